"""Sharding specs as the emitted code reads them, and the mesh it needs.

``Spec`` is a parsed ShardingSpec string (DESIGN §4): per tensor dim the
mesh axes it is split over and its block factor (``S0x3``: block-
interleaved), plus the axes of a partial sum (``P0``). ``MeshCoords`` is all
the emitted code needs to know of a mesh; ``alpa_torch.runtime.mesh.MeshGroups``
(the process groups of a job) provides it.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import List, Optional, Protocol, Sequence, Tuple

from alpa_torch import _C

__all__ = ["MeshCoords", "Spec", "local_shape"]


class MeshCoords(Protocol):
    """A logical mesh as seen from one rank: its shape (n0, n1), this rank's
    coordinate in it, and the process-group name of each set of mesh axes."""

    shape: Tuple[int, int]
    coord: Optional[Tuple[int, int]]

    def group(self, axes: Sequence[int]) -> str:
        ...


@dataclass
class Spec:
    """A parsed ShardingSpec string (see DESIGN §4)."""
    dims: List[List[int]]
    blocks: List[int]
    partial: List[int] = field(default_factory=list)

    @classmethod
    def parse(cls, text: str) -> "Spec":
        dims, blocks, partial, i = [], [], [], 0
        while i < len(text):
            c = text[i]
            i += 1
            if c == "R":
                dims.append([])
                blocks.append(1)
            elif c == "S":
                axes = []
                while i < len(text) and text[i].isdigit():
                    axes.append(int(text[i]))
                    i += 1
                block = 1
                if i < len(text) and text[i] == "x":
                    j = i + 1
                    while j < len(text) and text[j].isdigit():
                        j += 1
                    block, i = int(text[i + 1:j]), j
                dims.append(axes)
                blocks.append(block)
            elif c == "P":
                partial = [int(ch) for ch in text[i:]]
                break
        return cls(dims, blocks, partial)

    def to_string(self) -> str:
        """The spec's text, which ``parse`` reads back: ``S0x2R``, ``RS1P0``."""
        out = ""
        for axes, block in zip(self.dims, self.blocks):
            if not axes:
                out += "R"
            else:
                out += "S" + "".join(str(a) for a in axes) + (f"x{block}" if block != 1 else "")
        if self.partial:
            out += "P" + "".join(str(a) for a in self.partial)
        return out

    def pieces(self, mesh: MeshCoords) -> List[Tuple[int, int, int]]:
        """Per dim: (this rank's piece index, piece count, block factor)."""
        out = []
        for axes, block in zip(self.dims, self.blocks):
            index, count = 0, 1
            for a in axes:
                index = index * mesh.shape[a] + mesh.coord[a]
                count *= mesh.shape[a]
            out.append((index, count, block))
        return out


def local_shape(shape: Sequence[int], spec: Spec, mesh: MeshCoords) -> List[int]:
    """This rank's piece of a `shape` tensor laid out as `spec`: decided by
    the C++ planner (ShardingSpec::local_shape), which also rejects a dim
    that does not divide."""
    return list(_C.local_shape(spec.to_string(), [int(s) for s in shape], list(mesh.shape)))
