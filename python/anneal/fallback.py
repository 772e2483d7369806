"""Local fallback: evaluate a schedule's timeline without the server.

There is one implementation of the schedule engine, in C++. This module does
not port it: it runs `annealctl preview` (which compiles the spec with the
same engine the server uses) for each timeline segment, and then applies the
timeline rule of anneal/model/timeline.cc on top, so the result is bit-identical to
what the server would have served for the same timeline:

  segment i covers [from_i, from_{i+1}); its steps are its spec at local time
  t - time_origin, with cycle_offset added to the cycle; `restart` is
  cycle > 0 and step_in_cycle == 0, or the first step of a RESTART segment;
  the step before a RESTART segment is a `snapshot`.

The timeline is the one the client last fetched with GetSchedule. A change
made on the server after that is not known here (see docs/python-client.md).
"""

from __future__ import annotations

import bisect
import csv
import io
import os
import shutil
import subprocess
from typing import List, Optional, Sequence

from anneal.client import spec_to_json
from anneal.results import Phase, Segment, StepRange, pack_flags

_COLUMNS = ["step", "lr", "momentum", "beta1_bias_correction", "cycle",
            "step_in_cycle", "cycle_length", "phase", "restart", "snapshot"]

MAX_PREVIEW_STEPS = 1_000_000  # annealctl preview's --steps limit


def find_annealctl(explicit: Optional[str] = None) -> Optional[str]:
    """explicit, else $ANNEAL_BUILD_DIR/bin/annealctl, else annealctl on PATH."""
    if explicit:
        return explicit
    build = os.environ.get("ANNEAL_BUILD_DIR")
    if build:
        path = os.path.join(build, "bin", "annealctl")
        if os.access(path, os.X_OK):
            return path
    return shutil.which("annealctl")


class LocalTimeline:
    """A timeline evaluated offline with annealctl."""

    def __init__(self, segments: Sequence[Segment], annealctl: str, *,
                 batch_size: Optional[int] = None,
                 revision: Optional[int] = None, timeout: float = 60.0) -> None:
        if not segments or segments[0].from_step != 0:
            raise ValueError("a timeline starts with a segment at step 0")
        self.segments = list(segments)
        self.revision = revision
        self._starts = [s.from_step for s in self.segments]
        self._json = [spec_to_json(s.spec) for s in self.segments]
        self._annealctl = annealctl
        self._batch_size = batch_size
        self._timeout = timeout

    def _preview(self, index: int, local_start: int, count: int) -> List[List[str]]:
        args = [self._annealctl, "preview", "-f", "-", "--start",
                str(local_start), "--steps", str(count), "-o", "csv"]
        if self._batch_size is not None:
            args += ["--batch_size", str(self._batch_size)]
        done = subprocess.run(args, input=self._json[index].encode(),
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              timeout=self._timeout, check=False)
        if done.returncode != 0:
            raise RuntimeError("%s failed (exit %d): %s" % (
                " ".join(args), done.returncode,
                done.stderr.decode(errors="replace").strip()))
        rows = list(csv.reader(io.StringIO(done.stdout.decode())))
        if not rows or rows[0] != _COLUMNS or len(rows) != count + 1:
            raise RuntimeError("annealctl preview printed an unexpected table "
                               "(%d rows, header %r)" % (len(rows), rows[:1]))
        return rows[1:]

    def evaluate_range(self, start: int, count: int) -> StepRange:
        """Steps [start, start + count), as the server would serve them."""
        lr: List[float] = []
        flags: List[int] = []
        cycle: List[int] = []
        step_in_cycle: List[int] = []
        cycle_length: List[int] = []
        momentum: List[float] = []
        bias: List[float] = []
        any_momentum = False
        step, end = start, start + count
        i = bisect.bisect_right(self._starts, start) - 1
        while step < end:
            seg = self.segments[i]
            seg_end = (self._starts[i + 1] if i + 1 < len(self.segments)
                       else None)
            next_restarts = (seg_end is not None and
                             self.segments[i + 1].kind == "RESTART")
            n = min(end, seg_end if seg_end is not None else end) - step
            local = step - seg.time_origin
            for off in range(0, n, MAX_PREVIEW_STEPS):
                m = min(MAX_PREVIEW_STEPS, n - off)
                for row in self._preview(i, local + off, m):
                    t = start + len(lr)  # the global step of this row
                    c = int(row[4]) + seg.cycle_offset
                    sic = int(row[5])
                    restart = (c > 0 and sic == 0) or (
                        seg.kind == "RESTART" and t == seg.from_step)
                    snapshot = row[9] == "1" or (next_restarts and
                                                 t == seg_end - 1)
                    has_m = row[2] != ""
                    any_momentum = any_momentum or has_m
                    lr.append(float(row[1]))
                    momentum.append(float(row[2]) if has_m else 0.0)
                    bias.append(float(row[3]) if has_m else 0.0)
                    cycle.append(c)
                    step_in_cycle.append(sic)
                    cycle_length.append(int(row[6]))
                    flags.append(pack_flags(restart, snapshot, has_m,
                                            Phase[row[7]]))
            step += n
            i += 1
        return StepRange(start_step=start, lr=lr, flags=flags, cycle=cycle,
                         step_in_cycle=step_in_cycle,
                         cycle_length=cycle_length,
                         momentum=momentum if any_momentum else None,
                         beta1_bias_correction=bias if any_momentum else None,
                         revision=None, source="local")
