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


def _worker(rank, world, port, fn, args, queue):
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
