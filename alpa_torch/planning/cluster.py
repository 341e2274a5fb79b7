"""Cluster descriptions: what a plan is made for.

A cluster is hosts × devices with each device's peak FLOP/s, memory and
bandwidth, and the α (latency, s) / β (s per byte) of links within and
across hosts. Planning needs only this description, never the machines.
"""
from __future__ import annotations

import json
from typing import Any, Dict

from alpa_torch import _C

__all__ = ["Cluster", "as_cluster"]


class Cluster:
    """A cluster description (see ``Cluster.preset`` for common hardware)."""

    def __init__(self, spec: Dict[str, Any]):
        # Validated (and normalized) by the C++ side.
        self._spec = json.loads(_C.validate_cluster(json.dumps(spec)))

    @classmethod
    def preset(cls, name: str, num_hosts: int = 1, devices_per_host: int = 8) -> "Cluster":
        """``"a100-40gb"``, ``"h100-80gb"`` or ``"cpu-gloo"`` at the given size."""
        return cls(json.loads(_C.cluster_preset(name, num_hosts, devices_per_host)))

    @staticmethod
    def preset_names():
        return list(_C.cluster_preset_names())

    @property
    def num_hosts(self) -> int:
        return self._spec["num_hosts"]

    @property
    def devices_per_host(self) -> int:
        return self._spec["devices_per_host"]

    @property
    def num_devices(self) -> int:
        return self.num_hosts * self.devices_per_host

    def to_dict(self) -> Dict[str, Any]:
        return json.loads(json.dumps(self._spec))

    def to_json(self) -> str:
        return json.dumps(self._spec)

    def with_links(self, *, intra_alpha=None, intra_beta=None, inter_alpha=None,
                   inter_beta=None) -> "Cluster":
        """A copy with other link costs (α in seconds, β in seconds/byte)."""
        spec = self.to_dict()
        for key, value in (("intra_host", (intra_alpha, intra_beta)),
                           ("inter_host", (inter_alpha, inter_beta))):
            if value[0] is not None:
                spec[key]["alpha"] = float(value[0])
            if value[1] is not None:
                spec[key]["beta"] = float(value[1])
        return Cluster(spec)

    def __repr__(self) -> str:
        return (f"Cluster({self._spec['name']!r}, {self.num_hosts} x "
                f"{self.devices_per_host} {self._spec['device']['name']})")


def as_cluster(cluster, num_devices: int) -> Cluster:
    """Accepts a Cluster, a preset name, a dict, or None (local CPU processes)."""
    if cluster is None:
        return Cluster.preset("cpu-gloo", 1, num_devices)
    if isinstance(cluster, Cluster):
        return cluster
    if isinstance(cluster, str):
        return Cluster.preset(cluster, 1, num_devices)
    if isinstance(cluster, dict):
        return Cluster(cluster)
    raise TypeError(f"cluster must be a Cluster, a preset name "
                    f"({', '.join(Cluster.preset_names())}), a dict or None; got "
                    f"{type(cluster).__name__}")
