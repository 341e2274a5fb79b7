"""Which rank failed: heartbeats in the c10d store, and errors that name it.

Gloo's errors name at most a peer's address ("Connection reset by peer
[127.0.0.1]:41234"), and a timed-out collective names nobody. So every rank
of a job that alpa_torch parallelized keeps a heartbeat in the job's c10d
store: a daemon thread adds 1 to ``beat/<rank>`` every `interval` seconds
(no store traffic per collective). When a collective or pipeline transfer
fails (torch.ops.alpa.* and the C++ executor report it through the runtime's
failure hook, runtime/failures.h; alpa_torch's own torch.distributed calls
through `guard`), this rank

1. writes what failed into ``fail/<rank>``, so that the others can tell a
   rank that failed on its own from one that failed because of a peer;
2. watches every rank's heartbeat for `window` seconds: one that does not
   move belongs to a process that is dead or stopped (its Python no longer
   runs); one that moves, to a live rank;
3. raises PeerFailedError naming the ranks that died, hung or failed first, with
   host and pid, then the ranks that failed only because of them, the
   collective, its group and node, the backend's words and what to check.

Every store access on that path runs in a helper thread with a deadline, so
a store that is itself gone (without torchrun's agent, rank 0's process
hosts it) reads as "rank 0 (store host) unreachable" instead of hanging.
Each rank's heartbeat thread also copies failure reports as they appear, so
a rank that looks after the store's host has exited still names the rank
the others found.

One monitor per process, as the C++ hook it installs is per process.
"""
from __future__ import annotations

import atexit
import contextlib
import json
import os
import socket
import threading
import time
import uuid
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, List, Optional, Sequence, Set, Tuple

import torch.distributed as dist

from alpa_torch.errors import CollectiveError, PeerFailedError

__all__ = ["WHAT_TO_CHECK", "intervals", "Site", "Findings", "Monitor", "name_group",
           "proposed_job", "this_process", "start", "guard", "report_own_failure"]

WHAT_TO_CHECK = (
    "Check those ranks' logs and exit status (killed? out of memory? crashed? stopped or stuck "
    "in a debugger?) and the network between their hosts, then restart the job from its last "
    "checkpoint (torchrun --max-restarts=N restarts it for you).")
_REPORT_CHARS = 600


def intervals(timeout_s: float) -> Tuple[float, float]:
    """(heartbeat interval, observation window), seconds, for groups whose
    timeout is `timeout_s`: the window, at least 4 beats, is what a
    diagnosis adds to a failure (1.5 s at a 10 s timeout, 2 s at 20 s, 4 s
    at the default 120 s)."""
    interval = min(1.0, max(0.1, timeout_s / 40.0))
    return interval, max(1.5, 4.0 * interval)


def _bounded(fn: Callable[[], Any], timeout_s: float) -> Tuple[Any, Optional[BaseException]]:
    """fn() in a daemon thread: (value, None), or (None, the error), or
    (None, TimeoutError) if it has not returned within `timeout_s`."""
    box: Dict[str, Any] = {}

    def target():
        try:
            box["value"] = fn()
        except BaseException as e:  # noqa: BLE001 -- handed to the caller
            box["error"] = e

    thread = threading.Thread(target=target, name="alpa-store-call", daemon=True)
    thread.start()
    thread.join(timeout_s)
    if thread.is_alive():
        return None, TimeoutError(f"the c10d store did not answer within {timeout_s:.1f} s")
    return box.get("value"), box.get("error")


@dataclass
class Site:
    """What failed, as the runtime reports it."""
    collective: str
    group: str
    node: str
    group_ranks: List[int]      # global ranks of the group, [] if unknown
    peers: List[int]            # global ranks waited on ([] = the whole group)
    error: str
    timed_out: bool


@dataclass
class Findings:
    failed: List[int] = field(default_factory=list)      # died, hung or failed first
    stale: Set[int] = field(default_factory=set)         # no heartbeat in the window
    reports: Dict[int, dict] = field(default_factory=dict)
    store_error: Optional[str] = None


class Monitor:
    """This process's heartbeat and failure reports in the job's store."""

    def __init__(self, store, rank: int, world: int, job: str,
                 peers: Sequence[Tuple[str, int]], timeout_s: float):
        self.job = job
        self.rank, self.world = rank, world
        self.peers = list(peers)  # (host, pid) of every rank
        self.interval, self.window = intervals(timeout_s)
        self.timeout_s = timeout_s
        self.store_host, self.store_host_rank = _store_host(store)
        self.store = dist.PrefixStore(f"alpa_health/{job}/", store)
        self.world_pg = dist.group.WORLD
        self.cache: Dict[int, dict] = {}  # failure reports seen by the heartbeat thread
        self.published = False
        self.store_error: Optional[str] = None  # why the heartbeat stopped
        self._seen_failures = 0
        self._stop = threading.Event()
        self.store.add(f"beat/{rank}", 1)  # exists before any peer looks
        self._thread = threading.Thread(target=self._run, name="alpa-heartbeat", daemon=True)
        self._thread.start()

    # -- the heartbeat thread ---------------------------------------------------
    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            if not self.active():
                break
            try:
                self.store.add(f"beat/{self.rank}", 1)
                count = self.store.add("failures", 0)
                if count != self._seen_failures:
                    self._seen_failures = count
                    self.cache.update(self._read_reports())
            except Exception as e:  # noqa: BLE001 -- the store is gone (a TCPStore
                self.store_error = f"{type(e).__name__}: {_first_line(str(e))}"
                break  # client does not reconnect): nothing to beat into
        self.store = None  # drop the store (and, on rank 0, its server) with the job

    def active(self) -> bool:
        """True while the job this monitor beats for is the live default group."""
        return (not self._stop.is_set() and dist.is_available() and dist.is_initialized()
                and dist.group.WORLD is self.world_pg)

    def stop(self) -> None:
        self._stop.set()

    def tighten(self, timeout_s: float) -> None:
        interval, window = intervals(timeout_s)
        self.interval, self.window = min(self.interval, interval), min(self.window, window)
        self.timeout_s = max(self.timeout_s, timeout_s)

    # -- reports ----------------------------------------------------------------
    def _read_reports(self) -> Dict[int, dict]:
        store, out = self.store, {}
        # a report from an earlier failure this job survived (a caught error)
        # is not about this one
        oldest = time.time() - (2 * self.timeout_s + self.window + 30.0)
        for r in range(self.world):
            key = f"fail/{r}"
            if r != self.rank and store.check([key]):
                try:
                    report = json.loads(store.get(key).decode())
                except ValueError:
                    continue
                if report.get("time", 0.0) >= oldest:
                    out[r] = report
        return out

    def publish(self, kind: str, text: str, failed: Optional[List[int]] = None) -> None:
        """This rank's failure for the others: kind "error" (its own) or
        "peer" (caused by the ranks `failed`, None while unknown)."""
        report = json.dumps({"kind": kind, "text": text[:_REPORT_CHARS], "failed": failed,
                             "time": time.time()})
        store = self.store
        if store is None:
            return

        def write():
            store.set(f"fail/{self.rank}", report)
            store.add("failures", 1)
        _, error = _bounded(write, 1.0)
        self.published = self.published or error is None

    # -- diagnosis --------------------------------------------------------------
    def observe(self, site: Site) -> Findings:
        """Publishes this failure, watches the heartbeats for the window."""
        store = self.store
        found = Findings()
        if store is None:
            found.store_error = self.store_error or "the heartbeat has stopped"
            found.reports = dict(self.cache)
            return found
        summary = f"{site.collective} on group '{site.group}'" + (
            f" at {site.node}" if site.node else "")

        def watch():
            store.set(f"fail/{self.rank}", json.dumps(
                {"kind": "peer", "text": summary, "failed": None, "time": time.time()}))
            store.add("failures", 1)
            others = [r for r in range(self.world) if r != self.rank]
            first = {r: store.add(f"beat/{r}", 0) for r in others}
            moved: Set[int] = set()
            reports: Dict[int, dict] = {}
            seen, deadline = -1, time.monotonic() + self.window
            while True:
                count = store.add("failures", 0)
                if count != seen:
                    seen, reports = count, self._read_reports()
                waiting = [r for r in others if r not in moved and r not in reports]
                if not waiting or time.monotonic() >= deadline:
                    return set(waiting), reports
                time.sleep(min(0.1, self.interval / 2))
                for r in waiting:
                    if store.add(f"beat/{r}", 0) != first[r]:
                        moved.add(r)

        value, error = _bounded(watch, self.window + 2.0)
        if error is not None:
            found.store_error = f"{type(error).__name__}: {_first_line(str(error))}"
            found.reports = dict(self.cache)
        else:
            found.stale, found.reports = value
            self.published = True
        return found

    def failure(self, site: Site) -> CollectiveError:
        """The error to raise for `site`: PeerFailedError when the failed ranks
        are known, else CollectiveError. Publishes the finding."""
        found = self.observe(site)
        failed = set(found.stale) | {r for r, rep in found.reports.items()
                                     if rep["kind"] == "error"}
        if not failed:  # what the others found (the store may be gone by now)
            for rep in found.reports.values():
                failed |= set(rep.get("failed") or [])
        host = self.store_host_rank
        if found.store_error is not None and host is not None and host != self.rank and (
                host not in found.reports or not failed):
            failed.add(host)  # the store's host is gone (or all we know)
        failed.discard(self.rank)
        found.failed = sorted(failed)
        message = self._message(site, found)
        if found.store_error is None:
            self.publish("peer", message, found.failed)
        kind = PeerFailedError if found.failed else CollectiveError
        return kind(message, rank=self.rank, collective=site.collective, group=site.group,
                    node=site.node, group_ranks=site.group_ranks, failed_ranks=found.failed)

    def who(self, r: int) -> str:
        if 0 <= r < len(self.peers):
            host, pid = self.peers[r]
            return f"rank {r} (pid {pid} on {host})"
        return f"rank {r}"

    def _message(self, site: Site, found: Findings) -> str:
        role = _roles.get(site.group, "")
        ranks = f"ranks {site.group_ranks}" if site.group_ranks else "ranks unknown"
        head = (f"rank {self.rank}: {site.collective} on process group '{site.group}' "
                f"({role + ': ' if role else ''}{ranks})"
                + (f" at {site.node}" if site.node else "")
                + (" timed out" if site.timed_out else " failed"))
        if site.peers:
            head += " waiting for " + ", ".join(f"rank {p}" for p in site.peers)
        causes = []
        for r in found.failed:
            rep = found.reports.get(r)
            if r in found.stale:
                causes.append(f"{self.who(r)} is dead or hung: its heartbeat stopped (no beat "
                              f"in {self.window:.1f} s) and it reported no error")
            elif rep is not None and rep["kind"] == "error":
                causes.append(f"{self.who(r)} failed first: {rep['text']}")
            elif r == self.store_host_rank and found.store_error is not None:
                causes.append(f"{self.who(r)}, which hosts the c10d store, is unreachable "
                              f"({found.store_error}): it has died or hung")
            else:
                finders = sorted(k for k, v in found.reports.items()
                                 if r in (v.get("failed") or []))
                causes.append(f"{self.who(r)} failed (found by rank"
                              f"{'s' if len(finders) > 1 else ''} {', '.join(map(str, finders))})")
        lines = [head + (": " + "; ".join(causes) if causes else
                         ": no other rank is known to have failed")]
        after = sorted(r for r, rep in found.reports.items()
                       if rep["kind"] == "peer" and r not in found.failed)
        if after:
            lines.append("Ranks that failed after them: " + ", ".join(
                f"{self.who(r)}" for r in after) + ".")
        if found.store_error is not None and self.store_host_rank not in found.failed:
            lines.append(f"The c10d store (hosted by {self.store_host}) is unreachable: "
                         f"{found.store_error}.")
        lines.append(f"The backend said: {_first_line(site.error)}")
        lines.append(WHAT_TO_CHECK if found.failed else
                     "Every rank's heartbeat is live: check that all ranks run the same program "
                     "with the same inputs (a rank that skipped or reordered a collective), or "
                     "raise the group timeout if a rank is merely slow.")
        return "\n".join(lines)


def _first_line(text: str) -> str:
    for line in text.splitlines():
        if line.strip():
            return line.strip()[:_REPORT_CHARS]
    return ""


def _store_host(store) -> Tuple[str, Optional[int]]:
    """Who hosts the c10d store, in words, and its rank if a rank does."""
    base = store
    while isinstance(base, dist.PrefixStore):
        base = base.underlying_store
    if isinstance(base, dist.TCPStore):
        if os.environ.get("TORCHELASTIC_USE_AGENT_STORE", "").lower() == "true":
            return f"torchrun's agent on {base.host}:{base.port}", None
        return "rank 0", 0
    return type(base).__name__, None


# ---- the process's monitor ------------------------------------------------------

_monitor: Optional[Monitor] = None
_roles: Dict[str, str] = {}  # group name -> what the group is, for messages
_hook_installed = False


def name_group(group_name: str, role: str) -> None:
    """Says in messages what process group `group_name` is for."""
    _roles[group_name] = role


def proposed_job() -> str:
    """The job id rank 0 proposes: the running monitor's, or a new one."""
    if _monitor is not None and _monitor.active():
        return _monitor.job
    return uuid.uuid4().hex[:12]


def this_process() -> Tuple[str, int]:
    return socket.gethostname(), os.getpid()


def start(job: str, peers: Sequence[Tuple[str, int]], timeout_s: float) -> Optional[Monitor]:
    """Starts (or keeps) this process's heartbeat for `job`, whose ranks run
    as `peers` [(host, pid)]; installs the runtime's failure hook."""
    global _monitor
    if _monitor is not None and _monitor.active() and _monitor.job == job:
        _monitor.tighten(timeout_s)
        return _monitor
    if _monitor is not None:
        _monitor.stop()
    try:
        store = dist.distributed_c10d._get_default_store()
    except (RuntimeError, ValueError, AttributeError):
        return None  # no store to beat into: errors keep the runtime's context only
    _monitor = Monitor(store, dist.get_rank(), dist.get_world_size(), job, peers, timeout_s)
    _install_hook()
    return _monitor


def _install_hook() -> None:
    global _hook_installed
    if _hook_installed:
        return
    try:
        from alpa_torch import _runtime
    except ImportError:  # built without the executor: C++ errors keep their context only
        _runtime = None
    if _runtime is not None:
        _runtime.set_failure_hook(_on_runtime_failure)
    atexit.register(_linger)
    _hook_installed = True


def _linger() -> None:
    """At exit: a rank hosting the store that reported a failure stays a
    moment, so that the others' heartbeat threads can copy its report."""
    mon = _monitor
    if mon is not None and mon.published and mon.store_host_rank == mon.rank:
        time.sleep(2 * mon.interval)
    if mon is not None:
        mon.stop()


def _group_ranks(group_name: str) -> List[int]:
    try:
        pg = dist.distributed_c10d._resolve_process_group(group_name)
        return list(dist.get_process_group_ranks(pg))
    except Exception:  # noqa: BLE001 -- only for the message
        return []


def _on_runtime_failure(collective: str, group: str, node: str, group_rank: int,
                        peers: List[int], error: str, timed_out: bool) -> None:
    """The C++ runtime's failure hook: raises the error naming the failed
    peers (or returns, and the runtime raises its own)."""
    mon = _monitor
    if mon is None or not mon.active():
        return
    ranks = _group_ranks(group)
    peer_ranks = [ranks[p] if 0 <= p < len(ranks) else p for p in peers]
    raise _failure(mon, Site(collective, group, node, ranks, peer_ranks, error, timed_out))


def _failure(mon: Monitor, site: Site) -> CollectiveError:
    try:
        return mon.failure(site)
    except Exception as e:  # noqa: BLE001 -- a diagnosis must never hide the failure
        return CollectiveError(
            f"rank {mon.rank}: {site.collective} on process group '{site.group}' (ranks "
            f"{site.group_ranks}) at {site.node or 'unknown node'} failed: "
            f"{_first_line(site.error)} (finding the failed peer failed too: {e})",
            rank=mon.rank, collective=site.collective, group=site.group, node=site.node,
            group_ranks=site.group_ranks)


@contextlib.contextmanager
def guard(collective: str, group, node: str):
    """Runs torch.distributed calls over `group` (a ProcessGroup); a failure
    becomes PeerFailedError/CollectiveError as for the runtime's collectives."""
    try:
        yield
    except CollectiveError:
        raise
    except RuntimeError as e:
        mon = _monitor
        if mon is None or not mon.active():
            raise
        name = getattr(group, "group_name", str(group))
        ranks = list(dist.get_process_group_ranks(group)) if group is not None else []
        text = str(e)
        timed_out = "timed out" in text.lower() or "timeout" in text.lower()
        raise _failure(mon, Site(collective, name, node, ranks, [], text, timed_out)) from e


def report_own_failure(where: str, error: BaseException) -> None:
    """Tells the other ranks that this rank failed on its own (not because
    of a peer), so that their errors name it."""
    mon = _monitor
    if mon is None or not mon.active() or isinstance(error, CollectiveError):
        return
    mon.publish("error", f"{where}: {type(error).__name__}: {_first_line(str(error))}")
