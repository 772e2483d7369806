#!/usr/bin/python3
"""Per-step cost of anneal's PyTorch scheduler against PyTorch's own.

One training run (a small MLP on scikit-learn's digits, SGD with momentum)
drives three models side by side, each with its own optimizer and scheduler:

  anneal      anneal.torch.AnnealLR, prefetching a window (the default mode);
  torch       torch.optim.lr_scheduler.CosineAnnealingWarmRestarts, local;
  anneal-rpc  AnnealLR(prefetch=False): one blocking Evaluate call per step.

All three follow the same SGDR schedule (T_0=10, T_mult=2). Every iteration
trains each model once (forward, backward, optimizer.step(), untimed, in a
rotating order) and times only its scheduler.step() with perf_counter_ns,
minus the timer's own overhead. So the schedulers are measured under the
same conditions (same process, same load, same cache pressure, a real
training step between two scheduler steps, which is also what gives the
background refresh its time).

anneal's figure includes every step: the ones inside the window (an index and
a dict write) and the ones at the refresh point. Its background thread's CPU
time (the EvaluateRange calls and unpacking) is reported separately, per
step, and added in the "with refresh thread" ratio.

For reference it also times the bare step: --tight-steps back-to-back
step() calls with nothing in between (anneal's window holding all of them),
for PyTorch and for anneal.

And the hot loop's whole-process CPU: --hot-steps back-to-back step() calls
with the default AnnealLR (window 256, its refresh thread fetching as the
loop goes), the process's CPU time (every thread: time.process_time) per
step, against PyTorch's scheduler doing the same, alternated --hot-reps
times; the ratio of the medians.

Target (issue 4): anneal's mean per-step cost <= 0.5 x PyTorch's.

Usage (the server is started from the build unless --server is given):
  /usr/bin/python3 bench/torch_scheduler_bench.py [--steps 5000] [--window 256]
  ANNEAL_BUILD_DIR=build-py /usr/bin/python3 bench/torch_scheduler_bench.py
"""

from __future__ import annotations

import argparse
import json
import os
import pathlib
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from typing import Dict, List, Optional

ROOT = pathlib.Path(__file__).resolve().parents[1]
BUILD = pathlib.Path(os.environ.get("ANNEAL_BUILD_DIR", ROOT / "build"))
sys.path.insert(0, str(ROOT / "python"))  # the package, generated modules checked in

import torch  # noqa: E402
from sklearn.datasets import load_digits  # noqa: E402

import anneal  # noqa: E402
from anneal.torch import AnnealLR  # noqa: E402


def start_server(workdir: str) -> "tuple[subprocess.Popen, str]":
    port_file = os.path.join(workdir, "port")
    proc = subprocess.Popen(
        [str(BUILD / "bin" / "anneal-server"), "--listen=127.0.0.1:0",
         "--metrics_listen=127.0.0.1:0",
         "--db=" + os.path.join(workdir, "bench.db"),
         "--port_file=" + port_file],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        if os.path.exists(port_file):
            return proc, "127.0.0.1:" + open(port_file).read().strip()
        if proc.poll() is not None:
            break
        time.sleep(0.01)
    proc.kill()
    raise SystemExit("anneal-server did not start (%s)" % BUILD)


def timer_overhead_ns(n: int = 200_000) -> float:
    clock = time.perf_counter_ns
    samples = []
    for _ in range(n):
        a = clock()
        samples.append(clock() - a)
    return statistics.median(samples)


def summary(ns: List[int], overhead: float) -> Dict[str, float]:
    xs = sorted(max(0.0, x - overhead) for x in ns)
    return {"mean_ns": sum(xs) / len(xs), "median_ns": xs[len(xs) // 2],
            "p99_ns": xs[int(len(xs) * 0.99)], "max_ns": xs[-1]}


def main(argv: Optional[List[str]] = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--steps", type=int, default=5000)
    p.add_argument("--window", type=int, default=256)
    p.add_argument("--tight-steps", type=int, default=100_000,
                   help="steps of the back-to-back step() loop")
    p.add_argument("--hot-steps", type=int, default=50_000,
                   help="steps of the whole-process CPU loop")
    p.add_argument("--hot-reps", type=int, default=3)
    p.add_argument("--server", help="HOST:PORT of a running server")
    p.add_argument("--json", action="store_true", help="print JSON only")
    args = p.parse_args(argv)

    torch.set_num_threads(1)
    torch.manual_seed(0)
    digits = load_digits()
    x = torch.tensor(digits.data, dtype=torch.float32) / 16.0
    y = torch.tensor(digits.target, dtype=torch.long)

    tmp = tempfile.TemporaryDirectory()
    proc = None
    target = args.server
    if target is None:
        proc, target = start_server(tmp.name)
    client = anneal.Client(target)
    name = "bench-sgdr-%d" % os.getpid()
    client.create(name, {"max_lr": 0.1,
                         "warm_restarts": {"period": 10, "period_mult": 2}})

    def model():
        return torch.nn.Sequential(torch.nn.Linear(64, 32), torch.nn.ReLU(),
                                   torch.nn.Linear(32, 10))

    runs = {}
    for kind in ("anneal", "torch", "anneal-rpc"):
        m = model()
        opt = torch.optim.SGD(m.parameters(), lr=0.1, momentum=0.9)
        if kind == "torch":
            sched = torch.optim.lr_scheduler.CosineAnnealingWarmRestarts(
                opt, T_0=10, T_mult=2)
        else:
            sched = AnnealLR(opt, name, client=client, window=args.window,
                             prefetch=(kind == "anneal"))
        runs[kind] = {"model": m, "opt": opt, "sched": sched, "ns": []}

    loss_fn = torch.nn.CrossEntropyLoss()
    kinds = list(runs)
    clock = time.perf_counter_ns
    overhead = timer_overhead_ns()
    batch = 64
    for step in range(args.steps):
        idx = slice((step * batch) % 1728, (step * batch) % 1728 + batch)
        for k in range(3):
            run = runs[kinds[(step + k) % 3]]
            run["opt"].zero_grad()
            loss_fn(run["model"](x[idx]), y[idx]).backward()
            run["opt"].step()
            sched = run["sched"]
            a = clock()
            sched.step()
            run["ns"].append(clock() - a)

    # The bare step, for reference: N back-to-back step() calls, no
    # training in between, anneal's window holding all of them.
    def loop_scheduler(kind, **anneal_options):
        opt = torch.optim.SGD(model().parameters(), lr=0.1, momentum=0.9)
        if kind == "torch":
            return torch.optim.lr_scheduler.CosineAnnealingWarmRestarts(
                opt, T_0=10, T_mult=2)
        return AnnealLR(opt, name, client=client, **anneal_options)

    tight = {}
    n = args.tight_steps
    for kind in ("torch", "anneal"):
        sched = loop_scheduler(kind, window=n + 2, refresh_after=n + 1)
        a = clock()
        for _ in range(n):
            sched.step()
        tight[kind] = (clock() - a) / n
        if kind == "anneal":
            sched.close()

    # The hot loop's whole-process CPU, the refresh thread included.
    hot = {"torch": [], "anneal": []}
    for _ in range(args.hot_reps):
        for kind in ("torch", "anneal"):
            sched = loop_scheduler(kind, window=args.window)
            c0 = time.process_time_ns()
            for _ in range(args.hot_steps):
                sched.step()
            hot[kind].append((time.process_time_ns() - c0) / args.hot_steps)
            if kind == "anneal":
                sched.close()

    lrs = {k: runs[k]["opt"].param_groups[0]["lr"] for k in kinds}
    assert lrs["anneal"] == lrs["torch"] == lrs["anneal-rpc"], lrs
    pre = runs["anneal"]["sched"].prefetcher
    result = {
        "steps": args.steps, "window": args.window,
        "timer_overhead_ns": overhead,
        "torch_version": torch.__version__,
        "anneal": summary(runs["anneal"]["ns"], overhead),
        "torch": summary(runs["torch"]["ns"], overhead),
        "anneal_rpc": summary(runs["anneal-rpc"]["ns"], overhead),
        "anneal_fetches": pre.fetches,
        "anneal_refresh_thread_ns_per_step":
            pre.worker_cpu_seconds * 1e9 / args.steps,
        "tight_steps": n,
        "tight_torch_ns": tight["torch"],
        "tight_anneal_ns": tight["anneal"],
        "tight_ratio": tight["anneal"] / tight["torch"],
        "hot_steps": args.hot_steps,
        "hot_cpu_torch_ns": statistics.median(hot["torch"]),
        "hot_cpu_anneal_ns": statistics.median(hot["anneal"]),
        "hot_cpu_ratio": (statistics.median(hot["anneal"]) /
                          statistics.median(hot["torch"])),
    }
    t_mean = result["torch"]["mean_ns"]
    result["ratio_mean"] = result["anneal"]["mean_ns"] / t_mean
    result["ratio_median"] = (result["anneal"]["median_ns"] /
                              result["torch"]["median_ns"])
    result["ratio_mean_with_refresh_thread"] = (
        result["anneal"]["mean_ns"] +
        result["anneal_refresh_thread_ns_per_step"]) / t_mean
    result["ratio_rpc_mean"] = result["anneal_rpc"]["mean_ns"] / t_mean
    result["target_met"] = result["ratio_mean"] <= 0.5

    for run in runs.values():
        if isinstance(run["sched"], AnnealLR):
            run["sched"].close()
    client.close()
    if proc is not None:
        proc.send_signal(signal.SIGTERM)
        proc.wait()

    if args.json:
        print(json.dumps(result, indent=2))
        return 0
    print("scheduler.step() cost per step, %d steps of a digits MLP run "
          "(timer overhead %.0f ns subtracted)" % (args.steps, overhead))
    print("%-12s %10s %10s %10s %10s" % ("", "mean", "median", "p99", "max"))
    for label, key in (("torch CAWR", "torch"), ("anneal", "anneal"),
                       ("anneal-rpc", "anneal_rpc")):
        s = result[key]
        print("%-12s %8.0f ns %7.0f ns %7.0f ns %7.0f ns" % (
            label, s["mean_ns"], s["median_ns"], s["p99_ns"], s["max_ns"]))
    print("anneal: %d EvaluateRange calls (window %d); refresh thread CPU "
          "%.0f ns per step" % (pre.fetches, args.window,
                                result["anneal_refresh_thread_ns_per_step"]))
    print("ratio anneal/torch: mean %.3f, median %.3f, mean with refresh "
          "thread %.3f (target <= 0.5: %s)" % (
              result["ratio_mean"], result["ratio_median"],
              result["ratio_mean_with_refresh_thread"],
              "met" if result["target_met"] else "NOT met"))
    print("ratio anneal-rpc/torch (blocking Evaluate per step): mean %.1f" %
          result["ratio_rpc_mean"])
    print("bare step() in a loop of %d: torch %.0f ns, anneal %.0f ns, "
          "ratio %.3f" % (n, tight["torch"], tight["anneal"],
                          result["tight_ratio"]))
    print("hot loop of %d steps, whole-process CPU per step: torch %.0f ns, "
          "anneal %.0f ns (window %d, refresh thread included), ratio %.3f "
          "(target <= 0.5)" % (args.hot_steps, result["hot_cpu_torch_ns"],
                               result["hot_cpu_anneal_ns"], args.window,
                               result["hot_cpu_ratio"]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
