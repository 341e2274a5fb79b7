// This file implements the framing check of pickles (see pickle_framing.h).
//
// Every opcode of pickle protocols 0 to 5 takes its argument one of four
// ways: none; a fixed number of bytes; a little-endian length followed by
// that many bytes; or text up to a newline (two lines for GLOBAL and INST).
// The walk checks each against the bytes left; memo indexes are checked
// against the number of opcodes, since every memo entry is made by one.
#include "runtime/pickle_framing.h"

#include <array>
#include <cstdint>
#include <cstdio>

namespace alpa::runtime {
namespace {

enum class Arg : uint8_t {
  kUnknown,
  kNone,
  kFixed,   // `size` bytes
  kLength,  // a `size`-byte unsigned length, then that many bytes
  kSignedLength,
  kLines,   // `size` newline-terminated lines
  kFrame,   // an 8-byte length of the frame that follows (opcodes, not skipped)
  kMemo,    // a `size`-byte memo index
  kStop,
};

struct Opcode {
  Arg arg = Arg::kUnknown;
  uint8_t size = 0;
};

constexpr std::array<Opcode, 256> make_table() {
  std::array<Opcode, 256> t{};
  for (unsigned char c : std::string_view("()012NQRabd}el]ostu")) t[c] = {Arg::kNone, 0};
  // NEWOBJ, TUPLE1-3, NEWTRUE, NEWFALSE, EMPTY_SET ... STACK_GLOBAL, MEMOIZE,
  // NEXT_BUFFER, READONLY_BUFFER
  for (unsigned char c : {0x81, 0x85, 0x86, 0x87, 0x88, 0x89, 0x8f, 0x90, 0x91, 0x92, 0x93,
                          0x94, 0x97, 0x98}) {
    t[c] = {Arg::kNone, 0};
  }
  t['.'] = {Arg::kStop, 0};
  t['J'] = {Arg::kFixed, 4};     // BININT
  t['K'] = {Arg::kFixed, 1};     // BININT1
  t['M'] = {Arg::kFixed, 2};     // BININT2
  t['G'] = {Arg::kFixed, 8};     // BINFLOAT
  t[0x80] = {Arg::kFixed, 1};    // PROTO
  t[0x82] = {Arg::kFixed, 1};    // EXT1
  t[0x83] = {Arg::kFixed, 2};    // EXT2
  t[0x84] = {Arg::kFixed, 4};    // EXT4
  t['h'] = {Arg::kMemo, 1};      // BINGET
  t['j'] = {Arg::kMemo, 4};      // LONG_BINGET
  t['q'] = {Arg::kMemo, 1};      // BINPUT
  t['r'] = {Arg::kMemo, 4};      // LONG_BINPUT
  t['T'] = {Arg::kSignedLength, 4};  // BINSTRING
  t['U'] = {Arg::kLength, 1};    // SHORT_BINSTRING
  t['X'] = {Arg::kLength, 4};    // BINUNICODE
  t[0x8c] = {Arg::kLength, 1};   // SHORT_BINUNICODE
  t[0x8d] = {Arg::kLength, 8};   // BINUNICODE8
  t['B'] = {Arg::kLength, 4};    // BINBYTES
  t['C'] = {Arg::kLength, 1};    // SHORT_BINBYTES
  t[0x8e] = {Arg::kLength, 8};   // BINBYTES8
  t[0x96] = {Arg::kLength, 8};   // BYTEARRAY8
  t[0x8a] = {Arg::kLength, 1};   // LONG1
  t[0x8b] = {Arg::kSignedLength, 4};  // LONG4
  t[0x95] = {Arg::kFrame, 8};    // FRAME
  for (unsigned char c : std::string_view("ILFSVPgp")) t[c] = {Arg::kLines, 1};
  t['c'] = {Arg::kLines, 2};     // GLOBAL module\nname\n
  t['i'] = {Arg::kLines, 2};     // INST
  return t;
}

constexpr std::array<Opcode, 256> kOpcodes = make_table();

uint64_t little_endian(std::string_view bytes) {
  uint64_t v = 0;
  for (size_t i = bytes.size(); i-- > 0;) v = (v << 8) | static_cast<unsigned char>(bytes[i]);
  return v;
}

}  // namespace

core::Status check_pickle_framing(std::string_view pickle, const std::string& name) {
  auto bad = [&](size_t at, const std::string& why) {
    return core::invalid_argument("the archive's " + name + " is damaged: " + why +
                                  " at byte " + std::to_string(at) + " of " +
                                  std::to_string(pickle.size()) +
                                  " (write the file again with torch.jit.save)");
  };
  size_t pos = 0;
  uint64_t opcodes = 0;
  while (pos < pickle.size()) {
    const size_t at = pos;
    const auto code = static_cast<unsigned char>(pickle[pos++]);
    const Opcode op = kOpcodes[code];
    ++opcodes;
    const size_t left = pickle.size() - pos;
    switch (op.arg) {
      case Arg::kUnknown: {
        // Not fmt: the runtime compiles against torch's bundled fmt headers.
        char hex[8];
        std::snprintf(hex, sizeof hex, "0x%02x", code);
        return bad(at, std::string("unknown opcode ") + hex);
      }
      case Arg::kStop:
        return core::ok_status();
      case Arg::kNone:
        break;
      case Arg::kFixed:
      case Arg::kMemo:
      case Arg::kFrame: {
        if (left < op.size) return bad(at, "an opcode's argument runs past the end");
        const uint64_t value = little_endian(pickle.substr(pos, op.size));
        if (op.arg == Arg::kMemo && value > opcodes) {
          return bad(at, "memo index " + std::to_string(value) + " after only " +
                             std::to_string(opcodes) + " opcodes");
        }
        if (op.arg == Arg::kFrame && value > left - op.size) {
          return bad(at, "a frame of " + std::to_string(value) + " bytes where " +
                             std::to_string(left - op.size) + " remain");
        }
        pos += op.size;
        break;
      }
      case Arg::kLength:
      case Arg::kSignedLength: {
        if (left < op.size) return bad(at, "a length runs past the end");
        uint64_t length = little_endian(pickle.substr(pos, op.size));
        if (op.arg == Arg::kSignedLength && (length >> 31) != 0) {
          return bad(at, "a negative length");
        }
        pos += op.size;
        if (length > pickle.size() - pos) {
          return bad(at, "a length of " + std::to_string(length) + " bytes where " +
                             std::to_string(pickle.size() - pos) + " remain");
        }
        pos += static_cast<size_t>(length);
        break;
      }
      case Arg::kLines:
        for (int line = 0; line < op.size; ++line) {
          const size_t end = pickle.find('\n', pos);
          if (end == std::string_view::npos) return bad(at, "a text argument has no newline");
          pos = end + 1;
        }
        break;
    }
  }
  return bad(pickle.size(), "no STOP opcode");
}

}  // namespace alpa::runtime
