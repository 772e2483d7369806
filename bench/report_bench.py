#!/usr/bin/python3
"""Metric reporting: what it costs a training step, and how fast it delivers.

Three measurements, in one run against one server (so they share the
machine's load):

  caller cost    MetricReporter.report() on the training thread (a dict
                 conversion and a queue insert), per call, against a PyTorch
                 CosineAnnealingWarmRestarts.step() timed in the same loop:
                 reported as a ratio;
  blocking       anneal.Client.report() in a loop: one durable call at a
                 time, the baseline (each waits for its own fsync);
  background     MetricReporter delivering N queued reports with up to
                 --in-flight calls at once (the server commits concurrent
                 reports together): reports/s, and the ratio to blocking.
  plateau        blocking reports that a plateau policy counts (its metric
                 in each report: the counters are a second durable write)
                 against blocking reports on a schedule without one, in
                 alternating chunks: the ratio of their per-call times.

Usage (the server is started from the build unless --server is given):
  /usr/bin/python3 bench/report_bench.py [--reports 3000] [--in-flight 8]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from typing import List, Optional

from torch_scheduler_bench import start_server, summary, timer_overhead_ns

import torch  # noqa: E402

import anneal  # noqa: E402


def main(argv: Optional[List[str]] = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--reports", type=int, default=3000)
    p.add_argument("--in-flight", type=int, default=16)
    p.add_argument("--server", help="HOST:PORT of a running server")
    p.add_argument("--json", action="store_true", help="print JSON only")
    args = p.parse_args(argv)

    with tempfile.TemporaryDirectory() as work:
        proc = None
        target = args.server
        if target is None:
            proc, target = start_server(work)
        try:
            client = anneal.Client(target, timeout=10)
            suffix = time.time_ns() % 10**9  # fresh names on a --server
            names = [client.create("bench-%s-%d" % (what, suffix), {
                         "max_lr": 0.1, "cosine": {"period": 100}}).name
                     for what in ("caller", "blocking", "background",
                                  "plain")]
            policy = client.create("bench-policy-%d" % suffix, {
                "max_lr": 0.1, "cosine": {"period": 100},
                "plateau": {"metric": "loss", "patience": 2**31 - 1}}).name
            overhead = timer_overhead_ns()
            clock = time.perf_counter_ns

            # Caller cost, interleaved with PyTorch's scheduler step.
            opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))],
                                  lr=0.1, momentum=0.9)
            torch_sched = torch.optim.lr_scheduler.CosineAnnealingWarmRestarts(
                opt, T_0=10, T_mult=2)
            reporter = anneal.MetricReporter(
                client, names[0], max_in_flight=args.in_flight,
                max_pending=args.reports + 1)
            report_ns, torch_ns = [], []
            for step in range(args.reports):
                a = clock()
                reporter.report(step, {"loss": 1.0 / (step + 1), "acc": 0.5})
                b = clock()
                torch_sched.step()
                c = clock()
                report_ns.append(b - a)
                torch_ns.append(c - b)
            assert reporter.flush(timeout=120)
            reporter.close()

            # Blocking: one durable call at a time.
            start = time.perf_counter()
            for step in range(args.reports):
                client.report(names[1], step, {"loss": 1.0 / (step + 1),
                                               "acc": 0.5})
            blocking = args.reports / (time.perf_counter() - start)

            # Background delivery of a full queue.
            reporter = anneal.MetricReporter(
                client, names[2], max_in_flight=args.in_flight,
                max_pending=args.reports + 1)
            start = time.perf_counter()
            for step in range(args.reports):
                reporter.report(step, {"loss": 1.0 / (step + 1), "acc": 0.5})
            assert reporter.flush(timeout=120)
            background = args.reports / (time.perf_counter() - start)
            reporter.close()
            # Plateau: alternating chunks, a ratio per pair of chunks.
            chunk = max(1, args.reports // 10)
            ratios, next_step = [], {names[3]: 0, policy: 0}
            for _ in range(5):
                took = {}
                for n in (names[3], policy):
                    start = time.perf_counter()
                    for _ in range(chunk):
                        step = next_step[n]
                        client.report(n, step, {"loss": 1.0 + step})
                        next_step[n] = step + 1
                    took[n] = time.perf_counter() - start
                ratios.append(took[policy] / took[names[3]])
            counted = client.get(policy).plateau_state.reports
            assert counted == 5 * chunk, counted
            for n in names[:3]:
                got = sum(1 for _ in client.list_reports(n, page_size=1000))
                assert got == args.reports, (n, got)
        finally:
            if proc is not None:
                proc.terminate()
                proc.wait()

    caller = summary(report_ns, overhead)
    pytorch = summary(torch_ns, overhead)
    result = {
        "reports": args.reports, "in_flight": args.in_flight,
        "report_call": caller, "torch_step": pytorch,
        "report_call_vs_torch_step": caller["mean_ns"] / pytorch["mean_ns"],
        "blocking_reports_per_s": blocking,
        "background_reports_per_s": background,
        "background_vs_blocking": background / blocking,
        "plateau_vs_plain_blocking": sorted(ratios)[len(ratios) // 2],
        "plateau_vs_plain_blocking_all": ratios,
    }
    if args.json:
        print(json.dumps(result, indent=2))
        return 0
    print("reports: %d, in flight: %d" % (args.reports, args.in_flight))
    print("MetricReporter.report() on the caller: mean %.2f us, p99 %.2f us"
          % (caller["mean_ns"] / 1e3, caller["p99_ns"] / 1e3))
    print("PyTorch CosineAnnealingWarmRestarts.step(): mean %.2f us"
          % (pytorch["mean_ns"] / 1e3))
    print("  ratio report()/torch step: %.2f"
          % result["report_call_vs_torch_step"])
    print("blocking Client.report(): %.0f reports/s" % blocking)
    print("background MetricReporter: %.0f reports/s (%.1fx blocking)"
          % (background, result["background_vs_blocking"]))
    print("blocking report a plateau policy counts / one it does not: "
          "median %.2f (%s)" % (result["plateau_vs_plain_blocking"],
                                ", ".join("%.2f" % r for r in ratios)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
