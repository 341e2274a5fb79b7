"""Exceptions a user of alpa_torch can catch.

Errors from the C++ planner arrive as ValueError (bad input: malformed JSON,
inconsistent shapes, bad mesh), NotImplementedError (unsupported feature) or
PlanInfeasibleError (no plan fits the constraints). Errors of a running job
(a collective or pipeline transfer that failed or timed out) arrive as
CollectiveError, or PeerFailedError when another rank is known to have died,
hung or failed first (alpa_torch/runtime/health.py finds out which).
"""

__all__ = ["AlpaError", "CaptureError", "PlanInfeasibleError", "CollectiveError",
           "PeerFailedError"]


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


class CollectiveError(AlpaError, RuntimeError):
    """A collective or pipeline transfer of alpa_torch failed or timed out.

    The message names this rank, the collective, its process group (and the
    global ranks in it), the graph node or executor action it served, what
    the backend said and what to check. ``failed_ranks`` is empty: no peer
    is known to have failed (see ``PeerFailedError`` for when one is).
    """

    def __init__(self, message: str = "", *, rank: int = -1, collective: str = "",
                 group: str = "", node: str = "", group_ranks=(), failed_ranks=()):
        super().__init__(message)
        self.rank = rank
        self.collective = collective
        self.group = group
        self.node = node
        self.group_ranks = list(group_ranks)
        self.failed_ranks = list(failed_ranks)


class PeerFailedError(CollectiveError):
    """A collective or transfer failed because another rank died, hung or
    failed first; ``failed_ranks`` are those ranks (global ranks), named in
    the message with their host and process id.
    """
