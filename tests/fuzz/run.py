"""Runs the fuzz targets; the one command for smoke runs and campaigns.

    python tests/fuzz/run.py [TARGET ...|all] [--seconds N] [--out DIR]
    python tests/fuzz/run.py --replay TARGET FILE ...

Each target runs for N seconds (default 20), restarted after a crash of the
process until its time is up. Findings go to DIR/findings/ (default
build/fuzz): one file per distinct finding (its input, .bin, and a .txt
with the signature and traceback); the working corpus grows in
DIR/corpus/TARGET/ from tests/fuzz/seeds/TARGET/. Exit status 1 when
anything was found, so a CI step fails. Targets: graph, plan, ilp,
stage_dp, torchscript (docs/fuzzing.md).
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import select
import shutil
import subprocess
import sys
import time
from typing import Dict, List, Optional

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
TARGETS = ("graph", "plan", "ilp", "stage_dp", "torchscript")
# Per-input time limits (s): planning a pipeline of a seed graph takes seconds.
TIMEOUTS = {"graph": 60, "plan": 20, "ilp": 30, "stage_dp": 20, "torchscript": 30}
RSS_LIMIT_MB = 4096


def _native_signature(stderr: str, rc: int) -> str:
    """A crash of the process, named from libFuzzer's or faulthandler's text."""
    if ("libFuzzer: timeout" in stderr or "ALARM: working on the last Unit" in stderr
            or rc == -14):  # SIGALRM: libFuzzer's per-input timer
        kind = "timeout"
    elif "out-of-memory" in stderr or "rss limit" in stderr.lower():
        kind = "out-of-memory"
    elif re.search(r"in (mutate|json_mutator)\n", stderr):
        kind = "error in the fuzz mutator (a harness bug)"
    else:
        m = re.search(r"Fatal Python error: (\w[\w ]*)", stderr)
        kind = m.group(1).strip() if m else f"exit status {rc}"
    frame = re.findall(r'File "([^"]+)", line \d+ in (\w+)', stderr)
    where = next((f"{os.path.basename(f)}:{fn}" for f, fn in frame
                  if "alpa_torch" in f or "tests/fuzz" in f), "?")
    return f"native {kind} @ {where}"


def _of(name: str, target: str) -> bool:
    return name.startswith((f"finding-{target}-", f"crash-{target}-"))


def fuzz_target(target: str, seconds: float, out: str, python: str, seed: int = 0) -> Dict:
    corpus = os.path.join(out, "corpus", target)
    findings = os.path.join(out, "findings")
    os.makedirs(corpus, exist_ok=True)
    os.makedirs(findings, exist_ok=True)
    current = os.path.join(out, f"current-{target}")
    env = dict(os.environ, ALPA_FUZZ_FINDINGS=findings, ALPA_FUZZ_CURRENT=current,
               PYTHONFAULTHANDLER="1")
    seeds = os.path.join(HERE, "seeds", target)
    for old in os.listdir(findings):  # this run reports its own findings
        if _of(old, target):
            os.remove(os.path.join(findings, old))
    end, runs, native = time.monotonic() + seconds, 0, {}
    restarts = 0
    while True:
        left = int(end - time.monotonic())
        if left < 3:
            break
        cmd = [python, os.path.join(HERE, "fuzz_main.py"), target, f"-max_total_time={left}",
               f"-timeout={TIMEOUTS[target]}", f"-rss_limit_mb={RSS_LIMIT_MB}",
               "-max_len=1048576", "-print_final_stats=1", "-handle_segv=0", "-handle_abrt=0",
               "-handle_bus=0", "-handle_fpe=0", "-handle_ill=0",
               # a fixed seed makes a run repeatable (CI); 0 lets libFuzzer pick one
               f"-seed={seed + restarts if seed else 0}",
               f"-artifact_prefix={os.path.join(out, 'artifacts', target)}-", corpus, seeds]
        os.makedirs(os.path.join(out, "artifacts"), exist_ok=True)
        proc = subprocess.run(cmd, env=env, cwd=ROOT, stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, text=True, errors="replace",
                              timeout=left + TIMEOUTS[target] + 120)
        log = proc.stdout
        with open(os.path.join(out, f"log-{target}.txt"), "a") as f:
            f.write(log)
        m = re.search(r"stat::number_of_executed_units: (\d+)", log)
        counts = re.findall(r"^#(\d+)", log, re.M)
        runs += int(m.group(1)) if m else int(counts[-1]) if counts else 0
        if proc.returncode == 0:
            break
        restarts += 1
        sig = _native_signature(log, proc.returncode)
        if sig not in native and os.path.exists(current):
            name = os.path.join(findings, f"crash-{target}-" + re.sub(
                r"[^A-Za-z0-9]+", "-", sig)[:50] + "-" + hashlib.sha1(sig.encode()).hexdigest()[:8])
            shutil.copy(current, name + ".bin")
            with open(name + ".txt", "w") as f:
                f.write(f"{sig}\n(exit status {proc.returncode})\n\n{log[-6000:]}")
        native.setdefault(sig, 0)
        native[sig] += 1
    found = sorted(f for f in os.listdir(findings) if _of(f, target) and f.endswith(".txt"))
    return {"target": target, "seconds": seconds, "executions": runs, "restarts": restarts,
            "findings": found}


def run_replay(target: str, files: List[str], python: str, timeout: float) -> List[Dict]:
    """Results of replay.py for `files`, one dict each; a crash or a hang of
    the worker is that file's result, and the rest are replayed anew."""
    results, todo = [], list(files)
    while todo:
        proc = subprocess.Popen([python, os.path.join(HERE, "replay.py"), target] + todo,
                                cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                text=True, errors="replace")
        current: Optional[str] = None
        deadline = time.monotonic() + timeout
        while True:
            wait = max(0.0, deadline - time.monotonic())
            ready, _, _ = select.select([proc.stdout], [], [], wait)
            line = proc.stdout.readline() if ready else None
            if line is None:  # the input in progress hangs
                proc.kill()
                proc.wait()
                results.append({"file": current or todo[0], "ok": False,
                                "finding": f"hang: no result within {timeout} s"})
                break
            if not line:  # the worker ended
                proc.wait()
                if current is not None:
                    err = proc.stderr.read()
                    results.append({"file": current, "ok": False, "finding": _native_signature(
                        err, proc.returncode) + f" (exit status {proc.returncode})",
                        "details": err[-3000:]})
                break
            if not line.startswith("@@alpa-fuzz "):
                continue  # the target's own output
            msg = json.loads(line[len("@@alpa-fuzz "):])
            if "begin" in msg:
                current, deadline = msg["begin"], time.monotonic() + timeout
            else:
                results.append(msg)
                current = None
        done = {r["file"] for r in results}
        todo = [f for f in todo if f not in done]
        if proc.returncode == 0:
            break
    return results


def main(argv: Optional[List[str]] = None) -> int:
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("targets", nargs="*", default=["all"])
    p.add_argument("--seconds", type=float, default=20.0, help="per target (default 20)")
    p.add_argument("--out", default=os.path.join(ROOT, "build", "fuzz"))
    p.add_argument("--replay", action="store_true", help="replay files: TARGET FILE ...")
    p.add_argument("--python", default=sys.executable)
    p.add_argument("--seed", type=int, default=0,
                   help="libFuzzer's random seed (default 0: a new one each run); CI fixes it")
    args = p.parse_args(argv)
    if args.replay:
        results = run_replay(args.targets[0], args.targets[1:], args.python, 120)
        for r in results:
            print(("ok      " if r["ok"] else "FINDING ") + r["file"] +
                  ("" if r["ok"] else "\n        " + r["finding"]))
        return 0 if all(r["ok"] for r in results) else 1
    names = list(TARGETS) if args.targets in ([], ["all"]) else args.targets
    unknown = [t for t in names if t not in TARGETS]
    if unknown:
        p.error(f"unknown target(s) {unknown}; choose from {list(TARGETS)} or all")
    failed = False
    for name in names:
        r = fuzz_target(name, args.seconds, os.path.abspath(args.out), args.python, args.seed)
        print(f"fuzz {name}: {r['executions']} inputs in {r['seconds']:.0f} s, "
              f"{r['restarts']} restart(s), {len(r['findings'])} finding(s)", flush=True)
        for f in r["findings"]:
            with open(os.path.join(args.out, "findings", f)) as fh:
                print(f"  {f[:-4]}: {fh.readline().strip()}")
        failed |= bool(r["findings"])
    if failed:
        print(f"findings in {os.path.join(args.out, 'findings')} (replay one: python "
              f"tests/fuzz/run.py --replay TARGET FILE.bin)")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
