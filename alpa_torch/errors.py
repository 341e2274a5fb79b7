"""Exceptions a user of alpa_torch can catch.

Errors from the C++ planner arrive as ValueError (bad input: malformed JSON,
inconsistent shapes, bad mesh), NotImplementedError (unsupported feature) or
PlanInfeasibleError (no plan fits the constraints).
"""


class AlpaError(Exception):
    """Base class of alpa_torch's own exceptions."""


class CaptureError(AlpaError):
    """The model could not be captured into an ATen graph.

    The message names the module or op responsible and what to change.
    """


class PlanInfeasibleError(AlpaError):
    """No plan satisfies the constraints (e.g. the memory budget).

    The message states the least memory any plan needs.
    """
