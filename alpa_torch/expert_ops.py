"""Expert parallelism for mixture-of-experts layers: the local program of a
grouped matmul whose expert weights the plan splits by expert.

transformers' experts (``transformers.grouped_mm_fallback``, and
``aten._grouped_mm`` on GPUs) multiply rows of ``x`` [t, k], sorted by
expert, by ``w[e]`` [k, n], expert ``e`` owning rows
``offs[e-1] .. offs[e]``. A rank holding experts ``first .. first+E/n``
multiplies only their rows and leaves zeros elsewhere; the rewrite then
all-reduces the output over the expert axes (each row is computed on
exactly one rank), and by duality x's gradient.

    rows  0 ....... start ...... end ........ t
    x     [ others' | my experts' | others'  ]
    out   [ 0       | x_mine·w    | 0        ]
"""
from __future__ import annotations

import torch

GROUPED_MM = ("grouped_mm_fallback", "_grouped_mm")


def grouped_mm_experts(op, x: torch.Tensor, weight: torch.Tensor, offs: torch.Tensor,
                       piece: int) -> torch.Tensor:
    """``op(x, w, offs)`` restricted to this rank's experts: ``weight`` holds
    experts ``piece·E_local ..`` of the ``offs.numel()`` experts; ``offs`` is
    whole. Rows of other experts come out zero."""
    count = weight.shape[0]
    first = piece * count
    if offs.numel() % count != 0 or first + count > offs.numel():
        raise ValueError(f"grouped matmul: {count} local experts at piece {piece} do not tile "
                         f"the {offs.numel()} experts of offs")
    ends = offs.tolist()  # one host sync, as transformers' own loop makes
    start = ends[first - 1] if first else 0
    end = ends[first + count - 1]
    local = op(x[start:end], weight, offs[first:first + count] - start)
    return torch.nn.functional.pad(local, (0, 0, start, x.shape[0] - end))
