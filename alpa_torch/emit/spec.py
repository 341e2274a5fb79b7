"""Sharding specs as the emitted code reads them, and the mesh it needs.

``ShardingSpec`` is the C++ planner's spec (``_C.ShardingSpec``, DESIGN §4):
per tensor dim the mesh axes it is split over and its block factor
(``S0x3``: block-interleaved), plus the axes of a partial sum (``P0``);
Python parses no spec itself. ``MeshCoords`` is all
the emitted code needs to know of a mesh; ``alpa_torch.runtime.mesh.MeshGroups``
(the process groups of a job) provides it.
"""
from __future__ import annotations

from typing import List, Optional, Protocol, Sequence, Tuple

from alpa_torch import _C

__all__ = ["MeshCoords", "ShardingSpec", "parse_spec", "pieces", "without_partial", "local_shape"]


class MeshCoords(Protocol):
    """A logical mesh as seen from one rank: its shape (n0, n1), this rank's
    coordinate in it, and the process-group name of each set of mesh axes."""

    shape: Tuple[int, int]
    coord: Optional[Tuple[int, int]]

    def group(self, axes: Sequence[int]) -> str:
        ...


ShardingSpec = _C.ShardingSpec


def parse_spec(text: str) -> ShardingSpec:
    """A ShardingSpec string read by the C++ parser (the only one); a
    malformed one raises ValueError naming it."""
    return ShardingSpec.parse(text)


def pieces(spec: ShardingSpec, mesh: MeshCoords) -> List[Tuple[int, int, int]]:
    """Per dim: (this rank's piece index, piece count, block factor)."""
    return spec.pieces(tuple(mesh.shape), tuple(mesh.coord))


def without_partial(spec: ShardingSpec) -> ShardingSpec:
    """The same layout holding whole values (gradients are complete)."""
    return ShardingSpec.parse(str(spec).split("P")[0])


def local_shape(shape: Sequence[int], spec: ShardingSpec, mesh: MeshCoords) -> List[int]:
    """This rank's piece of a `shape` tensor laid out as `spec`: decided by
    the C++ planner (ShardingSpec::local_shape), which also rejects a dim
    that does not divide."""
    return list(_C.local_shape(str(spec), [int(s) for s in shape], list(mesh.shape)))
