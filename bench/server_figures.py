#!/usr/bin/python3
"""The server's performance figures (docs/performance.md), in one run.

Every figure is a ratio of two measurements taken in the same run, in
alternating order, each repetition gated on an idle machine, so that the
load of a shared machine falls on both sides alike:

  evaluate_64   Evaluate QPS on anneal-server / on null_server (the same
                gRPC registration answering captured bytes), 64 in flight,
                1,000 schedules; also at 8 in flight, with the p99 ratio.
  advance       Advance QPS (64 callers, each answer durable) / Evaluate QPS,
                on one SQLite server; with --fill_windows, after every
                schedule's dedup window (1,024 request ids) is full, the
                steady state of a server whose jobs have been advancing for
                a while (it takes about 1.5 minutes first).
  report        ReportMetrics QPS / Evaluate QPS, likewise.
  telemetry     Evaluate QPS with telemetry on (the default; /metrics
                scraped every second) / with --metrics_listen= (off), two
                servers of 1,000 schedules alternated.
  scale         with --scale schedules (default 100,000): how fast they are
                created (64 in flight), creates/s once loaded, RSS per
                schedule (all of one spec, each of its own spec, and all of
                one spec with momentum), Evaluate QPS over all
                names / over 1,000 names on the 1,000-schedule server, and
                ListSchedules with a label filter (p50), alone and the p99 of
                Advance while lists run.
  pickup        steps and milliseconds between a change (UpdateSchedule
                returned) and a C++ StepClient's revision() following it,
                with its watch / without (a refresh every 128 steps), by
                bench/watch_pickup.cc, alternated; also whether the LRs
                served agree.
  python        the Python client's figures, by bench/torch_scheduler_bench.py
                (the hot loop's whole-process CPU per step against PyTorch's
                CosineAnnealingWarmRestarts; scheduler.step() inside a real
                training run) and bench/range_bench.py (EvaluateRange of 1M
                steps to numpy arrays), against the same pinned server.

Placement: each server is pinned to CPU 0 and load_gen to CPU 1 (taskset).

Usage (after building: cmake --build build):
  /usr/bin/python3 bench/server_figures.py [--reps 3] [--seconds 3]
      [--scale 100000]
      [--only evaluate,advance,report,telemetry,scale,pickup,python]
      [--fill_windows]
      [--bin_dir build/bin] [--server build/bin/anneal-server]
"""

from __future__ import annotations

import argparse
import json
import os
import pathlib
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = pathlib.Path(__file__).resolve().parent.parent


def cpu_idle_fraction(interval: float = 0.5) -> float:
    def sample():
        with open("/proc/stat") as f:
            v = [int(x) for x in f.readline().split()[1:]]
        return v[3] + v[4], sum(v)
    i0, t0 = sample()
    time.sleep(interval)
    i1, t1 = sample()
    return (i1 - i0) / max(1, t1 - t0)


def wait_idle(threshold: float = 0.85, timeout: float = 30) -> float:
    """Waits until the machine is mostly idle; returns the idle fraction."""
    deadline = time.time() + timeout
    idle = cpu_idle_fraction()
    while idle < threshold and time.time() < deadline:
        idle = cpu_idle_fraction()
    return idle


class Server:
    """anneal-server or null_server on a free loopback port, pinned.
    anneal-server serves telemetry (its default) on a free port unless
    metrics is False."""

    def __init__(self, argv, cpu: str, metrics: bool = True):
        self.dir = tempfile.TemporaryDirectory(prefix="anneal-fig-")
        port_file = pathlib.Path(self.dir.name) / "port"
        self.null = "null_server" in argv[0]
        if self.null:
            import socket
            s = socket.socket()
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
            s.close()
            argv = argv + [f"--listen=127.0.0.1:{self.port}"]
        else:
            self.metrics_port_file = pathlib.Path(self.dir.name) / "mport"
            argv = argv + ["--listen=127.0.0.1:0", f"--port_file={port_file}",
                           f"--db={self.dir.name}/anneal.db"]
            argv += ([f"--metrics_listen=127.0.0.1:0",
                      f"--metrics_port_file={self.metrics_port_file}"]
                     if metrics else ["--metrics_listen="])
        self.proc = subprocess.Popen(["taskset", "-c", cpu] + argv,
                                     stdout=subprocess.DEVNULL,
                                     stderr=subprocess.DEVNULL)
        deadline = time.time() + 30
        while not self.null and not port_file.exists():
            if time.time() > deadline or self.proc.poll() is not None:
                raise RuntimeError(f"{argv[0]} did not start")
            time.sleep(0.05)
        if not self.null:
            self.port = int(port_file.read_text())
        else:
            time.sleep(0.5)

    @property
    def target(self) -> str:
        return f"127.0.0.1:{self.port}"

    def stop(self):
        self.proc.terminate()
        try:
            self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
        self.dir.cleanup()


def load(bin_dir, server: Server, *args, cpu="1", background=False):
    argv = ["taskset", "-c", cpu, str(bin_dir / "load_gen"),
            f"--target={server.target}", f"--server_pid={server.proc.pid}",
            *args]
    if background:
        return subprocess.Popen(argv, stdout=subprocess.PIPE, text=True)
    out = subprocess.run(argv, check=True, stdout=subprocess.PIPE,
                         text=True).stdout
    result = json.loads(out)
    if result.get("errors"):
        print(f"load_gen {' '.join(args)}: {result['errors']} errors, first: "
              f"{result.get('first_error')}", file=sys.stderr)
    return result


def spread(values):
    return (f"{statistics.median(values):.2f} "
            f"({min(values):.2f}-{max(values):.2f})")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--seconds", type=float, default=3)
    ap.add_argument("--scale", type=int, default=100_000)
    ap.add_argument("--only",
                    default="evaluate,advance,report,telemetry,scale,pickup,"
                    "python")
    ap.add_argument("--fill_windows", action="store_true",
                    help="advance: fill every dedup window first")
    ap.add_argument("--smoke", action="store_true",
                    help="python: tiny runs that only prove the script works")
    ap.add_argument("--bin_dir", default=str(ROOT / "build/bin"),
                    help="where load_gen and null_server are")
    ap.add_argument("--server", default="",
                    help="anneal-server binary (default: in --bin_dir)")
    a = ap.parse_args()
    bin_dir = pathlib.Path(a.bin_dir)
    a.server = a.server or str(bin_dir / "anneal-server")
    only = set(a.only.split(","))
    secs = [f"--seconds={a.seconds}", "--warmup=1"]
    rows = []

    base = Server([a.server], "0")
    try:
        load(bin_dir, base, "--populate=1000", "--request=evaluate",
             "--names=1000", "--seconds=1", "--warmup=0")
        reply = pathlib.Path(base.dir.name) / "evaluate.bin"
        subprocess.run([str(bin_dir / "load_gen"), f"--target={base.target}",
                        "--request=evaluate", f"--capture_reply={reply}"],
                       check=True)
        evaluate = ["--request=evaluate", "--names=1000", *secs]

        if "evaluate" in only:
            null = Server([str(bin_dir / "null_server"),
                           f"--reply_file={reply}"], "0")
            r64, r8, p99 = [], [], []
            try:
                for rep in range(a.reps):
                    order = [base, null] if rep % 2 == 0 else [null, base]
                    got = {}
                    for s in order:
                        wait_idle()
                        got[s, 64] = load(bin_dir, s, *evaluate,
                                          "--in_flight=64")
                        wait_idle()
                        got[s, 8] = load(bin_dir, s, *evaluate,
                                         "--in_flight=8")
                    r64.append(got[base, 64]["qps"] / got[null, 64]["qps"])
                    r8.append(got[base, 8]["qps"] / got[null, 8]["qps"])
                    p99.append(got[base, 8]["p99_us"] / got[null, 8]["p99_us"])
                    print(f"rep {rep}: anneal {got[base, 64]['qps']:.0f} "
                          f"null {got[null, 64]['qps']:.0f} qps at 64; "
                          f"anneal {got[base, 64]['server_cpu_us_per_call']:.1f} "
                          f"null {got[null, 64]['server_cpu_us_per_call']:.1f} "
                          "server us/call", file=sys.stderr)
            finally:
                null.stop()
            rows += [("Evaluate QPS / null server QPS, 64 in flight",
                      spread(r64), ">= 0.95"),
                     ("Evaluate QPS / null server QPS, 8 in flight",
                      spread(r8), ">= 0.95"),
                     ("Evaluate p99 / null server p99, 8 in flight",
                      spread(p99), "<= 1.2")]

        for kind, label in (("advance", "Advance QPS (64, durable) / "
                             "Evaluate QPS"),
                            ("report", "ReportMetrics QPS / Evaluate QPS")):
            if kind not in only:
                continue
            if kind == "advance" and a.fill_windows:
                # 1000 schedules x 1024 advances, each with a request id.
                load(bin_dir, base, "--request=advance", "--names=1000",
                     "--seconds=90", "--warmup=0", "--in_flight=64")
                label += " (dedup windows full)"
            ratios = []
            for rep in range(a.reps):
                wait_idle()
                e = load(bin_dir, base, *evaluate, "--in_flight=64")
                wait_idle()
                w = load(bin_dir, base, f"--request={kind}", "--names=1000",
                         *secs, "--in_flight=64")
                ratios.append(w["qps"] / e["qps"])
                print(f"rep {rep}: {kind} {w['qps']:.0f} evaluate "
                      f"{e['qps']:.0f} qps", file=sys.stderr)
            rows.append((label, spread(ratios), ">= 0.5"))

        if "telemetry" in only:
            rows += telemetry_figures(a, bin_dir, base, evaluate)
        if "scale" in only:
            rows += scale_figures(a, bin_dir, base, evaluate)
        if "pickup" in only:
            rows += pickup_figures(a, bin_dir, base)
        if "python" in only:
            rows += python_figures(a, base)
    finally:
        base.stop()

    width = max(len(r[0]) for r in rows)
    print(f"{'figure'.ljust(width)}  median (min-max) over {a.reps} reps  "
          "target")
    for name, value, target in rows:
        print(f"{name.ljust(width)}  {value.ljust(30)}  {target}")
    return 0


def telemetry_figures(a, bin_dir, on: Server, evaluate):
    """Evaluate QPS with telemetry on (scraped every second, as a busy
    Prometheus would not even do) over the same server with it off."""
    import threading
    import urllib.request
    off = Server([a.server], "0", metrics=False)
    stop = threading.Event()
    scrapes = []

    def scrape():
        url = f"http://127.0.0.1:{on.metrics_port_file.read_text().strip()}" \
              "/metrics"
        while not stop.wait(1.0):
            with urllib.request.urlopen(url, timeout=10) as r:
                scrapes.append(len(r.read()))

    scraper = threading.Thread(target=scrape, daemon=True)
    scraper.start()
    ratios, cpu = [], []
    try:
        load(bin_dir, off, "--populate=1000", "--request=evaluate",
             "--names=1000", "--seconds=1", "--warmup=0")
        for rep in range(a.reps):
            got = {}
            for s in ([on, off] if rep % 2 == 0 else [off, on]):
                wait_idle()
                got[s] = load(bin_dir, s, *evaluate, "--in_flight=64")
            ratios.append(got[on]["qps"] / got[off]["qps"])
            cpu.append(got[on]["server_cpu_us_per_call"] /
                       got[off]["server_cpu_us_per_call"])
            print(f"rep {rep}: telemetry on {got[on]['qps']:.0f} off "
                  f"{got[off]['qps']:.0f} qps, "
                  f"{got[on]['server_cpu_us_per_call']:.1f} vs "
                  f"{got[off]['server_cpu_us_per_call']:.1f} us CPU/call",
                  file=sys.stderr)
    finally:
        stop.set()
        scraper.join()
        off.stop()
    size = f", {scrapes[-1] // 1024} KiB a scrape" if scrapes else ""
    return [(f"Evaluate QPS telemetry on (scraped 1/s{size}) / off",
             spread(ratios), ">= 0.97"),
            ("Evaluate server CPU per call, telemetry on / off",
             spread(cpu), "<= 1.03")]


def python_bench(script, *args):
    argv = ["taskset", "-c", "1", sys.executable,
            str(ROOT / "bench" / script), "--json", *args]
    return json.loads(subprocess.run(argv, check=True, stdout=subprocess.PIPE,
                                     text=True).stdout)


def pickup_figures(a, bin_dir, server: Server):
    """How soon a C++ StepClient follows a change, watched and polled."""
    wait_idle()
    out = subprocess.run(
        ["taskset", "-c", "1", str(bin_dir / "watch_pickup"),
         f"--target={server.target}", f"--runs={max(1, a.reps)}",
         "--step_ms=2", "--steps=" + ("200" if a.smoke else "400")],
        check=True, stdout=subprocess.PIPE, text=True).stdout
    r = json.loads(out)
    on, off = r["watch"], r["no_watch"]
    if not r["same_lrs"]:
        # Not a figure but a broken promise: a change starts after the
        # served window, watched or not.
        raise RuntimeError("watch_pickup: the LRs served differ with the watch")
    return [("C++ StepClient steps to follow a change (2 ms steps), watch / "
             "none",
             f"{on['steps_median']:g} / {off['steps_median']:g} "
             f"(max {on['steps_max']:g} / {off['steps_max']:g})", ""),
            ("  same, milliseconds after the update returned",
             f"{on['ms_median']:.1f} / {off['ms_median']:.1f}",
             "LRs agree")]


def python_figures(a, server: Server):
    wait_idle()
    small = (["--steps=300", "--tight-steps=1000", "--hot-steps=2000"]
             if a.smoke else [])
    t = python_bench("torch_scheduler_bench.py", f"--server={server.target}",
                     f"--hot-reps={a.reps}", *small)
    wait_idle()
    r = python_bench("range_bench.py", f"--server={server.target}",
                     "--steps=10000" if a.smoke else "--steps=1000000",
                     f"--reps={max(3, a.reps)}")
    return [
        ("Python hot loop, process CPU per step, anneal / PyTorch CAWR",
         f"{t['hot_cpu_ratio']:.2f} ({t['hot_cpu_anneal_ns']:.0f} vs "
         f"{t['hot_cpu_torch_ns']:.0f} ns)", "<= 0.5"),
        ("Python step() in a training run, anneal / PyTorch CAWR",
         f"{t['ratio_mean']:.2f} mean, {t['ratio_mean_with_refresh_thread']:.2f}"
         " with refresh thread", ""),
        (f"Python EvaluateRange of {r['steps']} steps to arrays",
         f"{r['compact_ms']:.0f} ms (all raw: {r['raw_ms']:.0f} ms, lists: "
         f"{r['lists_ms']:.0f} ms)", "< 100 ms"),
    ]


def scale_figures(a, bin_dir, small: Server, evaluate):
    rows = []
    n = a.scale
    secs = [f"--seconds={a.seconds}", "--warmup=1"]
    for momentum, distinct in ((False, False), (False, True), (True, False)):
        big = Server([a.server, f"--max_schedules={n * 2 + 200_000}"], "0")
        try:
            idle_rss = load(bin_dir, big, "--request=list", "--seconds=0.2",
                            "--warmup=0", "--in_flight=1")["server_rss_kib"]
            wait_idle()
            extra = (["--momentum"] if momentum else []) + (
                ["--distinct_specs"] if distinct else [])
            filled = load(bin_dir, big, f"--populate={n}", *extra,
                          "--request=list", "--seconds=0.2", "--warmup=0",
                          "--in_flight=1")
            per = (filled["server_rss_kib"] - idle_rss) * 1024 / n
            tag = (" (momentum)" if momentum else
                   " (distinct specs)" if distinct else " (one spec)")
            rows.append((f"RSS with {n} schedules{tag}",
                         f"{filled['server_rss_kib'] / 1024:.0f} MiB, "
                         f"{per / 1024:.1f} KiB each", "< 300 MiB"))
            if momentum or distinct:
                continue
            rows.append((f"creates/s while loading {n}, 64 in flight",
                         f"{n / filled['populate_seconds']:.0f}/s", ""))
            wait_idle()
            c = load(bin_dir, big, "--request=create", *secs,
                     "--in_flight=64")
            rows.append((f"creates/s with {n} loaded, 64 in flight",
                         f"{c['qps']:.0f}/s "
                         f"({c['server_cpu_us_per_call']:.0f} us CPU each)",
                         ">= 5000/s"))
            ratios = []
            for rep in range(a.reps):
                pair = [(big, n), (small, 1000)]
                if rep % 2:
                    pair.reverse()
                got = {}
                for s, names in pair:
                    wait_idle()
                    got[names] = load(bin_dir, s, "--request=evaluate",
                                      f"--names={names}", *secs,
                                      "--in_flight=64")["qps"]
                ratios.append(got[n] / got[1000])
            rows.append((f"Evaluate over {n} names / over 1000 (1k server)",
                         spread(ratios), ">= 0.9"))
            wait_idle()
            lst = load(bin_dir, big, "--request=list", "--in_flight=1",
                       *secs)
            rows.append((f"ListSchedules, label filter over {n}, p50",
                         f"{lst['p50_us'] / 1000:.1f} ms "
                         f"({n // 100} matches, page 1000)", "< 5 ms"))
            wait_idle()
            alone = load(bin_dir, big, "--request=advance", f"--names={n}",
                         *secs, "--in_flight=8")
            wait_idle()
            lister = load(bin_dir, big, "--request=list", "--in_flight=2",
                          f"--seconds={a.seconds + 1}", "--warmup=0",
                          cpu="1", background=True)
            during = load(bin_dir, big, "--request=advance", f"--names={n}",
                          *secs, "--in_flight=8")
            lister.wait()
            rows.append(("Advance p99 while lists run / alone",
                         f"{during['p99_us'] / alone['p99_us']:.2f} "
                         f"({during['p99_us'] / 1000:.1f} ms vs "
                         f"{alone['p99_us'] / 1000:.1f} ms)", "writers never "
                         "blocked"))
        finally:
            big.stop()
    return rows


if __name__ == "__main__":
    sys.exit(main())
