// This file implements helpers on qualified op names ("aten.addmm.default"):
// the base name ("addmm") that rules and FLOP formulas key on.
#pragma once

#include <string_view>

namespace alpa::ir {

/// "aten.addmm.default" -> "addmm"; "aten.add.Tensor" -> "add";
/// "addmm" -> "addmm". Leading underscores are kept ("_softmax").
std::string_view op_base_name(std::string_view qualified);
/// "aten.add.Tensor" -> "Tensor"; "" when there is no overload part.
std::string_view op_overload(std::string_view qualified);

}  // namespace alpa::ir
