"""Local fallback: evaluate a schedule's timeline without the server.

There is one implementation of the schedule engine and of the timeline rule
(how segments make the LR of every step), in C++ (anneal/model/timeline.h).
This module ports neither: it hands the whole timeline to `annealctl preview
--timeline -`, which evaluates it with the same code the server uses, so the
result is bit-identical to what the server would have served for the same
timeline.

The timeline is the one the client last fetched with GetSchedule. A change
made on the server after that is not known here (see docs/python-client.md).
"""

from __future__ import annotations

import csv
import io
import os
import shutil
import subprocess
from typing import List, Optional, Sequence

from google.protobuf import json_format

from anneal.results import Phase, Segment, StepRange, pack_flags
from anneal.v1 import resources_pb2

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
        schedule = resources_pb2.Schedule()
        for s in segments:
            schedule.timeline.add(
                from_step=s.from_step, spec=s.spec, time_origin=s.time_origin,
                cycle_offset=s.cycle_offset,
                kind=resources_pb2.Segment.Kind.Value(s.kind))
        self.segments = list(segments)
        self.revision = revision
        self._json = json_format.MessageToJson(
            schedule, preserving_proto_field_name=True).encode()
        self._annealctl = annealctl
        self._batch_size = batch_size
        self._timeout = timeout

    def _preview(self, start: int, count: int) -> List[List[str]]:
        args = [self._annealctl, "preview", "--timeline", "-", "--start",
                str(start), "--steps", str(count), "-o", "csv"]
        if self._batch_size is not None:
            args += ["--batch_size", str(self._batch_size)]
        done = subprocess.run(args, input=self._json, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, timeout=self._timeout,
                              check=False)
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
        rows: List[List[str]] = []
        for off in range(0, count, MAX_PREVIEW_STEPS):
            rows += self._preview(start + off,
                                  min(MAX_PREVIEW_STEPS, count - off))
        any_momentum = any(row[2] != "" for row in rows)
        return StepRange(
            start_step=start,
            lr=[float(row[1]) for row in rows],
            flags=[pack_flags(row[8] == "1", row[9] == "1", row[2] != "",
                              Phase[row[7]]) for row in rows],
            cycle=[int(row[4]) for row in rows],
            step_in_cycle=[int(row[5]) for row in rows],
            cycle_length=[int(row[6]) for row in rows],
            momentum=([float(row[2]) if row[2] else 0.0 for row in rows]
                      if any_momentum else None),
            beta1_bias_correction=([float(row[3]) if row[3] else 0.0
                                    for row in rows]
                                   if any_momentum else None),
            revision=None, source="local")
