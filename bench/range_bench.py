#!/usr/bin/python3
"""EvaluateRange of many steps into usable arrays, from Python.

For one SGDR schedule with momentum (every array on the wire), times
anneal.Client.evaluate_range (compact: the floats sent raw and mapped by
numpy, the per-step integers as runs expanded by numpy) and, in the same
run and alternating with it, every array raw (raw_arrays without compact)
and the repeated-field encoding turned into Python lists. Prints the median
of --reps calls of each, the bytes on the wire, and the ratios.

Usage (the server is started from the build unless --server is given):
  /usr/bin/python3 bench/range_bench.py [--steps 1000000] [--reps 5]
"""

from __future__ import annotations

import argparse
import gc
import json
import statistics
import sys
import tempfile
import time

from torch_scheduler_bench import start_server

import anneal
from anneal.v1 import service_pb2


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--steps", type=int, default=1_000_000)
    p.add_argument("--reps", type=int, default=5)
    p.add_argument("--server", help="HOST:PORT of a running server")
    p.add_argument("--json", action="store_true", help="print JSON only")
    a = p.parse_args()
    tmp = tempfile.TemporaryDirectory()
    proc = None
    target = a.server
    if target is None:
        proc, target = start_server(tmp.name)
    try:
        client = anneal.Client(target)
        name = "range-bench-%d" % time.time_ns()
        client.create(name, {"max_lr": 0.1, "min_lr": 1e-4,
                             "warm_restarts": {"period": 10, "period_mult": 2},
                             "momentum": {"base": 0.85, "max": 0.95}})
        def request(**encoding):
            return service_pb2.EvaluateRangeRequest(
                name="schedules/" + name, start_step=0, count=a.steps,
                inspect_only=True, **encoding)
        # The Client's own call (compact), then the other two encodings
        # through the same stub, alternating in each repetition.
        variants = {
            "compact": lambda: client.evaluate_range(name, 0, a.steps,
                                                     inspect_only=True),
            "raw": lambda: anneal.StepRange.from_proto(client._call(
                "EvaluateRange", request(raw_arrays=True), 60).range),
            "lists": lambda: anneal.StepRange.from_proto(client._call(
                "EvaluateRange", request(), 60).range),
        }
        times = {v: [] for v in variants}
        for _ in range(a.reps):
            for v, fetch in variants.items():
                # The other variants' garbage (a million-element lists) is
                # collected first, so no variant pays for another's.
                r = None
                gc.collect()
                t0 = time.perf_counter()
                r = fetch()
                assert len(r) == a.steps
                times[v].append(time.perf_counter() - t0)
        wire = {v: client._call("EvaluateRange", request(**e), 60)
                .ByteSize() for v, e in (
                    ("compact", {"raw_arrays": True, "compact": True}),
                    ("raw", {"raw_arrays": True}), ("lists", {}))}
        client.delete(name)
        ms = {v: 1e3 * statistics.median(t) for v, t in times.items()}
        if a.json:
            print(json.dumps({"steps": a.steps, "reps": a.reps,
                              "compact_ms": ms["compact"],
                              "raw_ms": ms["raw"], "lists_ms": ms["lists"],
                              "wire_bytes": wire}))
            return 0
        for v in variants:
            print(f"{a.steps} steps to arrays, {v:7s}: {ms[v]:4.0f} ms, "
                  f"{wire[v] / 1e6:5.1f} MB, ratio to lists "
                  f"{ms[v] / ms['lists']:.2f} (median of {a.reps})")
    finally:
        if proc is not None:
            proc.terminate()
            proc.wait()
    return 0


if __name__ == "__main__":
    sys.exit(main())
