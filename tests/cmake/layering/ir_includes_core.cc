// A file of module ir that includes headers of ir and of core, its
// dependency: compiled as module ir by the ctest layering_allows_a_dependency,
// it must build (so the other layering test fails for the right reason).
#include "core/status.h"
#include "ir/graph.h"
