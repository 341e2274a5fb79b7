// This file declares the framing check of pickles (the format of data.pkl
// and constants.pkl inside a torch.jit.save archive), run by the
// TorchScript importer before torch::jit::load reads them.
//
// Why: LibTorch's unpickler trusts the lengths a pickle declares. A damaged
// BINUNICODE that says "4294967041 bytes follow" makes it allocate and zero
// 4 GiB before it finds the record is 600 bytes long. This check walks the
// opcodes without building anything and refuses, with the offset, every
// length, line or memo index that cannot be right for the bytes at hand, so
// a damaged file costs the importer a clean error, never the machine.
//
// Torch-free: it reads bytes only.
#pragma once

#include <string>
#include <string_view>

#include "core/status.h"

namespace alpa::runtime {

/// OK when every opcode of `pickle` up to STOP is known and its arguments
/// lie inside the bytes; else InvalidArgument naming `name` and the offset.
/// Bytes after STOP are not read (nor are they by an unpickler).
core::Status check_pickle_framing(std::string_view pickle, const std::string& name);

}  // namespace alpa::runtime
