// A file of module ir that includes a header of module plan, which sits
// above ir in the layering (DESIGN.md §3). Compiled as module ir by the
// ctest layering_refuses_an_upward_include, it must fail: ir's targets see
// only the include folders of ir and core.
#include "ir/graph.h"
#include "plan/plan.h"
