#!/usr/bin/python3
"""EvaluateRange of many steps into usable arrays, from Python.

For one SGDR schedule with momentum (every array on the wire), times
anneal.Client.evaluate_range (the arrays sent raw and mapped by numpy) and,
in the same run and alternating with it, the repeated-field encoding turned
into Python lists (what the client did before raw_arrays). Prints the median
of --reps calls of each and their ratio.

Usage (the server is started from the build unless --server is given):
  /usr/bin/python3 bench/range_bench.py [--steps 1000000] [--reps 5]
"""

from __future__ import annotations

import argparse
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
        packed_req = service_pb2.EvaluateRangeRequest(
            name="schedules/" + name, start_step=0, count=a.steps,
            inspect_only=True)
        raw, packed = [], []
        for _ in range(a.reps):
            t0 = time.perf_counter()
            r = client.evaluate_range(name, 0, a.steps, inspect_only=True)
            assert len(r) == a.steps
            t1 = time.perf_counter()
            resp = client._call("EvaluateRange", packed_req, 60)
            old = anneal.StepRange.from_proto(resp.range, resp.revision)
            assert len(old) == a.steps
            t2 = time.perf_counter()
            raw.append(t1 - t0)
            packed.append(t2 - t1)
        client.delete(name)
        r_ms = 1e3 * statistics.median(raw)
        p_ms = 1e3 * statistics.median(packed)
        if a.json:
            print(json.dumps({"steps": a.steps, "reps": a.reps,
                              "raw_ms": r_ms, "lists_ms": p_ms}))
            return 0
        print(f"{a.steps} steps to arrays: raw {r_ms:.0f} ms, repeated "
              f"fields to lists {p_ms:.0f} ms, ratio {r_ms / p_ms:.2f} "
              f"(median of {a.reps})")
    finally:
        if proc is not None:
            proc.terminate()
            proc.wait()
    return 0


if __name__ == "__main__":
    sys.exit(main())
