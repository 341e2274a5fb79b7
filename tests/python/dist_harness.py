"""Runs a function on N local processes (Gloo on 127.0.0.1) and returns each
rank's result. Every group has a timeout and the parent waits a bounded
time, so a test always ends: a hang or a crash becomes a failure that names
the rank."""
from __future__ import annotations

import datetime
import os
import socket
import traceback

import torch.multiprocessing as mp

GROUP_TIMEOUT_S = 60


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _worker(rank, world, port, fn, args, queue, fast_exit=False):
    import torch
    import torch.distributed as dist
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    torch.set_num_threads(1)
    try:
        dist.init_process_group("gloo", rank=rank, world_size=world,
                                timeout=datetime.timedelta(seconds=GROUP_TIMEOUT_S))
        result = fn(rank, world, *args)
        queue.put((rank, "ok", result))
    except BaseException:  # noqa: BLE001 -- reported to the parent
        queue.put((rank, "error", traceback.format_exc()))
    finally:
        if dist.is_initialized():
            dist.destroy_process_group()
    if fast_exit:
        # The result is sent and the groups are gone: run the atexit hooks
        # (alpa_torch's among them) but skip the interpreter's teardown,
        # seconds of garbage collection on a loaded machine that are no
        # part of what a fault test measures.
        import atexit
        queue.close()
        queue.join_thread()
        atexit._run_exitfuncs()
        os._exit(0)


def run_ranks(fn, world: int, *args, timeout: float = 300.0, allow_missing: bool = False):
    """[result of rank 0, ..., rank world-1]; raises with the first error.

    A rank whose process dies without reporting is None when allow_missing,
    else an AssertionError; the whole call never waits past `timeout`.
    """
    import queue as queue_module
    import time
    ctx = mp.get_context("spawn")
    queue = ctx.Queue()
    port = _free_port()
    procs = [ctx.Process(target=_worker, args=(r, world, port, fn, args, queue), daemon=True)
             for r in range(world)]
    for p in procs:
        p.start()
    results, errors = {}, []
    deadline = time.monotonic() + timeout
    try:
        while len(results) + len(errors) < world and time.monotonic() < deadline:
            try:
                rank, status, value = queue.get(timeout=1.0)
            except queue_module.Empty:
                silent = [r for r in range(world) if r not in results]
                if all(not procs[r].is_alive() for r in silent):
                    break  # the remaining ranks died without a word
                continue
            if status == "ok":
                results[rank] = value
            else:
                errors.append(f"rank {rank}:\n{value}")
                break
    finally:
        for p in procs:
            p.join(timeout=5 if not errors else 1)
            if p.is_alive():
                p.terminate()
    if errors:
        raise AssertionError("distributed run failed on " + errors[0])
    missing = [r for r in range(world) if r not in results]
    if missing and not allow_missing:
        raise AssertionError(f"ranks {missing} did not report within {timeout:.0f} s "
                             f"(died or hung); got {sorted(results)}")
    return [results.get(r) for r in range(world)]


# ---- fault injection -------------------------------------------------------------

FAULT_FILE_ENV = "ALPA_TEST_FAULT_FILE"


def inject_fault(signame: str) -> None:
    """Called by the rank that is to fail: records the moment (monotonic
    clock, shared by the processes of one machine) for the parent, then
    stops (SIGSTOP: a hang) or kills (SIGKILL: a crash) this process."""
    import signal
    import time
    path = os.environ[FAULT_FILE_ENV]
    with open(path + ".tmp", "w") as f:
        f.write(f"{os.getpid()} {time.monotonic()!r}")
    os.replace(path + ".tmp", path)
    os.kill(os.getpid(), getattr(signal, signame))


class FaultRun:
    """What run_with_fault saw: each rank's result (None for the failed one
    and any rank that did not report), the failed rank, and each survivor's
    exit time in seconds after the fault."""

    def __init__(self, results, fault_rank, fault_time, exit_after):
        self.results = results
        self.fault_rank = fault_rank
        self.fault_time = fault_time  # time.monotonic() of the fault
        self.exit_after = exit_after

    @property
    def survivors(self):
        return [r for r in range(len(self.results)) if r != self.fault_rank]


def _drain(queue, results, wait_s: float) -> None:
    """Moves every reported result into `results` (rank -> value)."""
    import queue as queue_module
    try:
        while True:
            rank, status, value = queue.get(timeout=wait_s) if wait_s else queue.get_nowait()
            results[rank] = value if status == "ok" else f"worker error:\n{value}"
    except queue_module.Empty:
        pass


def run_with_fault(fn, world: int, *args, timeout: float = 240.0) -> FaultRun:
    """Runs fn(rank, world, *args) on `world` ranks, one of which calls
    inject_fault(); waits for every other rank to exit (never past
    `timeout`), then kills the failed one (a stopped process too). Ranks
    skip the interpreter's teardown once done (ALPA_TEST_SLOW_EXIT=1: not)."""
    import multiprocessing.connection
    import shutil
    import tempfile
    import time
    ctx = mp.get_context("spawn")
    queue = ctx.Queue()
    port = _free_port()
    fault_file = os.path.join(tempfile.mkdtemp(prefix="alpa_fault_"), "fault")
    old = os.environ.get(FAULT_FILE_ENV)
    os.environ[FAULT_FILE_ENV] = fault_file  # inherited by the spawned ranks
    try:
        fast_exit = os.environ.get("ALPA_TEST_SLOW_EXIT") != "1"
        procs = [ctx.Process(target=_worker, args=(r, world, port, fn, args, queue, fast_exit),
                             daemon=True) for r in range(world)]
        for p in procs:
            p.start()
    finally:
        if old is None:
            os.environ.pop(FAULT_FILE_ENV, None)
        else:
            os.environ[FAULT_FILE_ENV] = old
    results, exited, fault = {}, {}, None
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            _drain(queue, results, 0.0)
            if fault is None and os.path.exists(fault_file):
                pid, at = open(fault_file).read().split()
                fault = (next(r for r, p in enumerate(procs) if p.pid == int(pid)), float(at))
            alive = [p for p in procs if p.pid not in exited]
            for s in multiprocessing.connection.wait([p.sentinel for p in alive], timeout=0.05):
                p = next(p for p in alive if p.sentinel == s)
                exited[p.pid] = time.monotonic()
            if fault is not None and all(p.pid in exited for r, p in enumerate(procs)
                                         if r != fault[0]):
                break
    finally:
        for p in procs:
            if p.is_alive():
                p.kill()  # the stopped rank, or one past the deadline
            p.join(timeout=5)
        _drain(queue, results, 0.2)
        shutil.rmtree(os.path.dirname(fault_file), ignore_errors=True)
    if fault is None:
        raise AssertionError(f"no rank injected its fault within {timeout:.0f} s; got {results}")
    exit_after = {r: exited[p.pid] - fault[1] for r, p in enumerate(procs)
                  if r != fault[0] and p.pid in exited}
    return FaultRun([results.get(r) for r in range(world)], fault[0], fault[1], exit_after)
