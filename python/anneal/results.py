"""Typed results: a step, a packed range of steps, a schedule and its timeline,
a metric report.

The wire forms are protobuf messages (anneal.v1). Training code wants plain,
typed values instead, so this module converts once, when a response arrives.

StepRange mirrors the wire layout of anneal/model/step_range.h exactly (parallel
arrays; the flag bits are anneal.v1.StepFlag, generated from resources.proto,
as C++ uses them). Ranges the server sends raw are mapped by numpy without a
copy; the per-step path (AnnealLR's window) turns its ranges into lists
(StepRange.as_lists), which it can index in tens of nanoseconds.
"""

from __future__ import annotations

import array
import datetime
import enum
import sys
from dataclasses import dataclass, field
from typing import Any, Dict, Iterator, List, Optional, Sequence

from anneal.v1 import resources_pb2, schedule_pb2

try:  # python3-numpy comes with python3-torch; the package works without it
    import numpy as _np
except ImportError:  # pragma: no cover - exercised where numpy is absent
    _np = None

# The wire's raw arrays (StepRange.*_raw, little-endian) as Python sees them.
_RAW_TYPES = {"lr": ("d", "<f8"), "momentum": ("d", "<f8"),
              "beta1_bias_correction": ("d", "<f8"), "cycle": ("q", "<i8"),
              "step_in_cycle": ("q", "<i8"), "flags": ("I", "<u4"),
              "cycle_length": ("q", "<i8")}


def _raw_array(data: bytes, field: str):
    """A read-only numpy array over `data` (no copy), or an array.array."""
    code, dtype = _RAW_TYPES[field]
    if _np is not None:
        return _np.frombuffer(data, dtype=dtype)
    a = array.array(code)
    a.frombytes(data)
    if sys.byteorder != "little":  # pragma: no cover
        a.byteswap()
    return a

_RUN_FIELDS = ("cycle", "step_in_cycle", "cycle_length", "flags")


def _np_empty(n: int) -> Dict[str, Any]:
    return {f: _np.empty(n, dtype=_RAW_TYPES[f][1]) for f in _RUN_FIELDS}


def _expand_runs(data: bytes, n: int, out: Optional[Dict[str, Any]] = None,
                 offset: int = 0) -> Dict[str, Sequence[int]]:
    """StepRange.runs_raw (five little-endian int64 a run: steps, cycle,
    step_in_cycle of its first step, cycle_length, flags) as the four
    per-step arrays; ValueError unless the runs cover exactly n steps.
    With numpy, `out` (arrays of the four fields) receives them at
    [offset, offset + n) instead of new arrays."""
    if len(data) % 40:
        raise ValueError("step range runs: %d bytes is not whole runs" %
                         len(data))
    if _np is not None:
        runs = _np.frombuffer(data, dtype="<i8").reshape(-1, 5)
        steps = runs[:, 0]
        if (steps <= 0).any() or (steps > n).any() or int(steps.sum()) != n:
            raise ValueError("step range runs do not cover its %d steps" % n)
        whole = out is None
        if whole:
            out = _np_empty(n)
        view = {f: out[f][offset:offset + n] for f in _RUN_FIELDS}
        if len(runs) <= 256:
            # Few runs (long cycles): slice fills, no temporary arrays.
            a = 0
            for count, cycle, first, length, flags in runs.tolist():
                b = a + count
                view["cycle"][a:b] = cycle
                view["cycle_length"][a:b] = length
                view["flags"][a:b] = flags
                view["step_in_cycle"][a:b] = _np.arange(first, first + count)
                a = b
        else:
            starts = _np.cumsum(steps) - steps
            view["cycle"][:] = _np.repeat(runs[:, 1], steps)
            view["step_in_cycle"][:] = _np.repeat(runs[:, 2] - starts, steps)
            view["step_in_cycle"] += _np.arange(n, dtype="<i8")
            view["cycle_length"][:] = _np.repeat(runs[:, 3], steps)
            view["flags"][:] = _np.repeat(runs[:, 4], steps)
        if whole:
            for x in out.values():
                x.flags.writeable = False  # as the arrays mapped from bytes
        return out
    words = array.array("q")
    words.frombytes(data)
    if sys.byteorder != "little":  # pragma: no cover
        words.byteswap()
    out = {f: array.array(_RAW_TYPES[f][0])
           for f in ("cycle", "step_in_cycle", "cycle_length", "flags")}
    total = 0
    for i in range(0, len(words), 5):
        steps, cycle, first, length, flags = words[i:i + 5]
        if steps <= 0 or steps > n - total:
            raise ValueError("step range runs do not cover its %d steps" % n)
        total += steps
        out["cycle"].extend([cycle] * steps)
        out["step_in_cycle"].extend(range(first, first + steps))
        out["cycle_length"].extend([length] * steps)
        out["flags"].extend([flags] * steps)
    if total != n:
        raise ValueError("step range runs do not cover its %d steps" % n)
    return out


def _expand_value_runs(data: bytes, n: int, out=None, offset: int = 0):
    """StepRange.momentum_runs_raw or beta1_bias_correction_runs_raw (a
    little-endian int64 count and double value a run) as n doubles, into
    `out`[offset:offset + n] when given; ValueError unless the counts add
    up to n."""
    if len(data) % 16:
        raise ValueError("step range value runs: %d bytes is not whole runs"
                         % len(data))
    if _np is not None:
        runs = _np.frombuffer(data, dtype=[("steps", "<i8"), ("value", "<f8")])
        steps = runs["steps"]
        if (steps <= 0).any() or (steps > n).any() or int(steps.sum()) != n:
            raise ValueError("step range value runs do not cover its %d steps"
                             % n)
        whole = out is None
        if whole:
            out = _np.empty(n, dtype="<f8")
        view = out[offset:offset + n]
        if len(runs) <= 256:
            a = 0
            for count, value in runs.tolist():
                view[a:a + count] = value
                a += count
        else:
            view[:] = _np.repeat(runs["value"], steps)
        if whole:
            out.flags.writeable = False
        return out
    pairs = array.array("q")
    pairs.frombytes(data)
    if sys.byteorder != "little":  # pragma: no cover
        pairs.byteswap()
    values = array.array("d")
    values.frombytes(data)  # the same words, read as doubles
    if sys.byteorder != "little":  # pragma: no cover
        values.byteswap()
    result = array.array("d")
    for i in range(0, len(pairs), 2):
        count = pairs[i]
        if count <= 0 or count > n - len(result):
            raise ValueError("step range value runs do not cover its %d steps"
                             % n)
        result.extend([values[i + 1]] * count)
    if len(result) != n:
        raise ValueError("step range value runs do not cover its %d steps" % n)
    return result


_VALUE_RUN_FIELDS = ("momentum", "beta1_bias_correction")


FLAG_RESTART = resources_pb2.STEP_FLAG_RESTART
FLAG_SNAPSHOT = resources_pb2.STEP_FLAG_SNAPSHOT
FLAG_HAS_MOMENTUM = resources_pb2.STEP_FLAG_HAS_MOMENTUM
FLAG_PHASE_SHIFT = resources_pb2.STEP_FLAG_PHASE_SHIFT
FLAG_PHASE_MASK = resources_pb2.STEP_FLAG_PHASE_MASK

# Where a step sits within its schedule: anneal.v1.Phase, as an IntEnum.
Phase = enum.IntEnum("Phase", {v.name: v.number
                               for v in schedule_pb2.Phase.DESCRIPTOR.values})


def pack_flags(restart: bool, snapshot: bool, has_momentum: bool,
               phase: int) -> int:
    """The StepRange flags word of one step (as anneal/model/step_range.cc)."""
    return ((FLAG_RESTART if restart else 0)
            | (FLAG_SNAPSHOT if snapshot else 0)
            | (FLAG_HAS_MOMENTUM if has_momentum else 0)
            | (int(phase) << FLAG_PHASE_SHIFT))


@dataclass(frozen=True)
class StepResult:
    """What the schedule says about one step.

    `lr` is the LR of update `step + 1` (docs/conventions.md). `momentum` and
    `beta1_bias_correction` are None unless the spec cycles momentum.
    `noise_std` is only ever set by an Evaluate call that passed gradient
    statistics (ranges carry no thermostat noise). `revision` is the schedule
    revision that produced the value (None when it came from the local
    fallback).
    """

    step: int
    lr: float
    cycle: int
    step_in_cycle: int
    cycle_length: int
    phase: Phase
    restart: bool
    snapshot: bool
    momentum: Optional[float] = None
    beta1_bias_correction: Optional[float] = None
    noise_std: Optional[float] = None
    revision: Optional[int] = None

    @property
    def flags(self) -> int:
        return pack_flags(self.restart, self.snapshot,
                          self.momentum is not None, self.phase)

    @classmethod
    def from_proto(cls, r: schedule_pb2.StepResult,
                   revision: Optional[int] = None) -> "StepResult":
        return cls(
            step=r.step, lr=r.lr, cycle=r.cycle,
            step_in_cycle=r.step_in_cycle, cycle_length=r.cycle_length,
            phase=Phase(r.phase), restart=r.restart, snapshot=r.snapshot,
            momentum=r.momentum if r.HasField("momentum") else None,
            beta1_bias_correction=(r.beta1_bias_correction
                                   if r.HasField("beta1_bias_correction")
                                   else None),
            noise_std=r.noise_std if r.HasField("noise_std") else None,
            revision=revision)


@dataclass(frozen=True)
class StepRange:
    """Steps start_step, start_step+1, ... as parallel sequences: Python
    lists, or, for ranges the server sends as raw arrays (what the Client
    asks for), read-only numpy arrays over the received bytes, or expanded
    from its runs (array.array where numpy is missing). result() and iteration give Python numbers.

    `momentum` and `beta1_bias_correction` are None when no step of the range
    has momentum scheduled; otherwise they are full length, with 0 where the
    step's FLAG_HAS_MOMENTUM bit is clear (the wire layout). `source` is
    "server" or "local" (the annealctl fallback); `revision` is the schedule
    revision the server evaluated (0 for Simulate, None for local ranges).
    """

    start_step: int
    lr: Sequence[float]
    flags: Sequence[int]
    cycle: Sequence[int]
    step_in_cycle: Sequence[int]
    cycle_length: Sequence[int]
    momentum: Optional[Sequence[float]] = None
    beta1_bias_correction: Optional[Sequence[float]] = None
    revision: Optional[int] = None
    source: str = "server"

    def __post_init__(self) -> None:
        n = len(self.lr)
        lengths = [len(self.flags), len(self.cycle), len(self.step_in_cycle),
                   len(self.cycle_length)]
        if self.momentum is not None:
            b1 = self.beta1_bias_correction
            lengths += [len(self.momentum), len(b1) if b1 is not None else 0]
        if any(m != n for m in lengths):
            raise ValueError(
                "step range arrays differ in length (%d learning rates, "
                "other arrays %s)" % (n, lengths))

    @property
    def end_step(self) -> int:
        """One past the last step of the range."""
        return self.start_step + len(self.lr)

    def __len__(self) -> int:
        return len(self.lr)

    def as_lists(self) -> "StepRange":
        """The same range with Python lists (fastest to index one step at a
        time); itself if it has them already."""
        if isinstance(self.lr, list):
            return self

        def lst(a):
            return None if a is None else (
                a.tolist() if hasattr(a, "tolist") else list(a))
        return StepRange(
            start_step=self.start_step, lr=lst(self.lr), flags=lst(self.flags),
            cycle=lst(self.cycle), step_in_cycle=lst(self.step_in_cycle),
            cycle_length=lst(self.cycle_length), momentum=lst(self.momentum),
            beta1_bias_correction=lst(self.beta1_bias_correction),
            revision=self.revision, source=self.source)

    def covers(self, step: int) -> bool:
        return self.start_step <= step < self.start_step + len(self.lr)

    def result(self, step: int) -> StepResult:
        """The StepResult of absolute step `step` (which must be covered)."""
        i = step - self.start_step
        if not 0 <= i < len(self.lr):
            raise IndexError("step %d is outside [%d, %d)" %
                             (step, self.start_step, self.end_step))
        f, lr = self.flags[i], self.lr[i]
        cycle, in_cycle, length = (self.cycle[i], self.step_in_cycle[i],
                                   self.cycle_length[i])
        arrays = not isinstance(self.lr, list)
        if arrays:  # numpy or array.array elements: Python numbers out
            f, lr, cycle, in_cycle, length = (int(f), float(lr), int(cycle),
                                              int(in_cycle), int(length))
        m = b1 = None
        if f & FLAG_HAS_MOMENTUM and self.momentum is not None:
            m, b1 = self.momentum[i], self.beta1_bias_correction[i]
            if arrays:
                m, b1 = float(m), float(b1)
        return StepResult(
            step=step, lr=lr, cycle=cycle, step_in_cycle=in_cycle,
            cycle_length=length,
            phase=Phase((f & FLAG_PHASE_MASK) >> FLAG_PHASE_SHIFT),
            restart=bool(f & FLAG_RESTART), snapshot=bool(f & FLAG_SNAPSHOT),
            momentum=m, beta1_bias_correction=b1, revision=self.revision)

    def __iter__(self) -> Iterator[StepResult]:
        for step in range(self.start_step, self.end_step):
            yield self.result(step)

    @classmethod
    def from_results(cls, results: List[StepResult],
                     revision: Optional[int] = None,
                     source: str = "server") -> "StepRange":
        """Consecutive step results packed as a range (the wire layout)."""
        has_m = any(r.momentum is not None for r in results)
        return cls(
            start_step=results[0].step if results else 0,
            lr=[r.lr for r in results], flags=[r.flags for r in results],
            cycle=[r.cycle for r in results],
            step_in_cycle=[r.step_in_cycle for r in results],
            cycle_length=[r.cycle_length for r in results],
            momentum=([r.momentum or 0.0 for r in results] if has_m
                      else None),
            beta1_bias_correction=([r.beta1_bias_correction or 0.0
                                    for r in results] if has_m else None),
            revision=revision, source=source)

    @classmethod
    def concatenate(cls, parts: Sequence["StepRange"]) -> "StepRange":
        """Consecutive ranges (each starting where the one before ends) as
        one, with the first one's revision and source."""
        for a, b in zip(parts, parts[1:]):
            if b.start_step != a.end_step:
                raise ValueError("ranges are not consecutive: %d then %d" %
                                 (a.end_step, b.start_step))
        arrays = not isinstance(parts[0].lr, list)

        def join(field_name):
            seqs = [getattr(p, field_name) for p in parts]
            if all(x is None for x in seqs):
                return None
            # A part without momentum arrays has zeros there (wire layout).
            seqs = [x if x is not None else [0.0] * len(p)
                    for x, p in zip(seqs, parts)]
            if arrays and _np is not None:
                out = _np.concatenate(seqs)
                out.flags.writeable = False
                return out
            if arrays:
                out = array.array(_RAW_TYPES[field_name][0])
                for x in seqs:
                    out.extend(x)
                return out
            return [v for x in seqs for v in x]
        return cls(start_step=parts[0].start_step, lr=join("lr"),
                   flags=join("flags"), cycle=join("cycle"),
                   step_in_cycle=join("step_in_cycle"),
                   cycle_length=join("cycle_length"),
                   momentum=join("momentum"),
                   beta1_bias_correction=join("beta1_bias_correction"),
                   revision=parts[0].revision, source=parts[0].source)

    @classmethod
    def from_protos(cls, parts: Sequence[resources_pb2.StepRange],
                    revision: Optional[int] = None) -> "StepRange":
        """Consecutive wire ranges as one StepRange. Raw or compact parts
        are decoded straight into one set of numpy arrays."""
        raw = all(p.lr_raw for p in parts)
        if _np is None or not raw or len(parts) == 1:
            return cls.concatenate([cls.from_proto(p, revision)
                                    for p in parts])
        sizes = [len(p.lr_raw) // 8 for p in parts]
        n = sum(sizes)
        out = _np_empty(n)
        out["lr"] = _np.empty(n, dtype="<f8")
        with_m = [bool(p.momentum_raw or p.momentum_runs_raw) for p in parts]
        if any(with_m):
            # Zeros where a part has none (the wire layout); filled anyway
            # where every part has them.
            make = _np.empty if all(with_m) else _np.zeros
            out["momentum"] = make(n, dtype="<f8")
            out["beta1_bias_correction"] = make(n, dtype="<f8")
        at = 0
        for p, size in zip(parts, sizes):
            if p.start_step != parts[0].start_step + at:
                raise ValueError("ranges are not consecutive")
            for f in out:
                data = getattr(p, f + "_raw")
                if f in _RUN_FIELDS and p.runs_raw:
                    continue
                if f in _VALUE_RUN_FIELDS and not data:
                    runs_data = getattr(p, f + "_runs_raw")
                    if runs_data:
                        _expand_value_runs(runs_data, size, out[f], at)
                    continue  # or none: zeros, the wire layout
                a = _raw_array(data, f)
                if len(a) != size:
                    raise ValueError("step range arrays differ in length")
                out[f][at:at + size] = a
            if p.runs_raw:
                if p.flags_raw or p.cycle_raw:
                    raise ValueError("step range with both runs and arrays")
                _expand_runs(p.runs_raw, size, out, at)
            at += size
        for x in out.values():
            x.flags.writeable = False
        return cls(start_step=parts[0].start_step, revision=revision,
                   source="server", momentum=out.pop("momentum", None),
                   beta1_bias_correction=out.pop("beta1_bias_correction",
                                                 None), **out)

    @classmethod
    def from_proto(cls, r: resources_pb2.StepRange,
                   revision: Optional[int] = None) -> "StepRange":
        if r.lr_raw or r.flags_raw or r.runs_raw:
            has_m = bool(r.momentum_raw or r.momentum_runs_raw)
            runs = bool(r.runs_raw)
            arrays = {f: _raw_array(getattr(r, f + "_raw"), f)
                      for f in _RAW_TYPES
                      if (has_m or f not in _VALUE_RUN_FIELDS)
                      and not (runs and f in _RUN_FIELDS)}
            n = len(arrays["lr"])
            if runs:
                if r.flags_raw or r.cycle_raw:
                    raise ValueError("step range with both runs and arrays")
                arrays.update(_expand_runs(r.runs_raw, n))
            for f in _VALUE_RUN_FIELDS:
                data = getattr(r, f + "_runs_raw")
                if data and has_m:
                    if getattr(r, f + "_raw"):
                        raise ValueError("step range with both %s runs and "
                                         "arrays" % f)
                    arrays[f] = _expand_value_runs(data, n)
            return cls(start_step=r.start_step, revision=revision,
                       source="server", momentum=arrays.pop("momentum", None),
                       beta1_bias_correction=arrays.pop(
                           "beta1_bias_correction", None), **arrays)
        has_m = len(r.momentum) > 0
        return cls(
            start_step=r.start_step, lr=list(r.lr), flags=list(r.flags),
            cycle=list(r.cycle), step_in_cycle=list(r.step_in_cycle),
            cycle_length=list(r.cycle_length),
            momentum=list(r.momentum) if has_m else None,
            beta1_bias_correction=(list(r.beta1_bias_correction)
                                   if has_m else None),
            revision=revision, source="server")


@dataclass(frozen=True)
class Segment:
    """One timeline segment: from `from_step` until the next one, lr(t) is
    `spec` at local time t - time_origin, with cycle_offset added to its
    cycle (docs/api.md, "The timeline")."""

    from_step: int
    spec: schedule_pb2.ScheduleSpec
    time_origin: int
    cycle_offset: int
    kind: str  # CREATE, UPDATE, RESTART or PLATEAU
    revision: int
    actor: str
    reason: str
    # A plateau policy's level: the segment serves spec's lr / max_lr *
    # lr_level (0: unscaled), and the evidence of the decision that added
    # it (None for changes people made).
    lr_level: float = 0.0
    plateau: Optional[resources_pb2.PlateauDecision] = None
    # In Schedule.superseded: the revision whose change replaced it.
    replaced_by_revision: int = 0

    @classmethod
    def from_proto(cls, s: resources_pb2.Segment) -> "Segment":
        return cls(from_step=s.from_step, spec=s.spec,
                   time_origin=s.time_origin, cycle_offset=s.cycle_offset,
                   kind=resources_pb2.Segment.Kind.Name(s.kind),
                   revision=s.revision, actor=s.actor, reason=s.reason,
                   lr_level=s.lr_level,
                   plateau=s.plateau if s.HasField("plateau") else None,
                   replaced_by_revision=s.replaced_by_revision)


@dataclass(frozen=True)
class Rewind:
    """A RewindSchedule: lineage `lineage` began at `to_step`; the lineage
    before it had served steps to_step..abandoned_max_step_served with the
    `abandoned` segments (specs included)."""

    lineage: int
    to_step: int
    revision: int
    abandoned_max_step_served: int
    abandoned: List[Segment]
    actor: str
    reason: str

    @classmethod
    def from_proto(cls, r: resources_pb2.Rewind) -> "Rewind":
        return cls(lineage=r.lineage, to_step=r.to_step, revision=r.revision,
                   abandoned_max_step_served=r.abandoned_max_step_served,
                   abandoned=[Segment.from_proto(x) for x in r.abandoned],
                   actor=r.actor, reason=r.reason)


@dataclass(frozen=True)
class Schedule:
    """The Schedule resource. `proto` keeps the full message (timestamps,
    etc.) for callers that need more than the typed fields."""

    name: str
    spec: schedule_pb2.ScheduleSpec
    display_name: str
    labels: Dict[str, str]
    etag: str
    revision: int
    position: int
    max_step_served: int
    timeline: List[Segment] = field(default_factory=list)
    # The plateau policy's counters (best, bad_reports, cooldown_left, ...);
    # None when the spec has no policy or nothing was counted yet.
    plateau_state: Optional[resources_pb2.PlateauState] = None
    # Segments a later change replaced before they were served (stamps
    # only, no spec; replaced_by_revision says which change), oldest first.
    superseded: List[Segment] = field(default_factory=list)
    # Where ForkSchedule copied this schedule from (source, at_step,
    # source_revision); None for a schedule that was created.
    forked_from: Optional[resources_pb2.ForkOrigin] = None
    # Which timeline it serves: 0 until the first rewind, +1 at each.
    lineage: int = 0
    rewinds: List[Rewind] = field(default_factory=list)
    proto: Optional[resources_pb2.Schedule] = field(default=None, repr=False,
                                                  compare=False)

    @property
    def id(self) -> str:
        return self.name.split("/", 1)[-1]

    @classmethod
    def from_proto(cls, s: resources_pb2.Schedule) -> "Schedule":
        return cls(name=s.name, spec=s.spec, display_name=s.display_name,
                   labels=dict(s.labels), etag=s.etag, revision=s.revision,
                   position=s.position, max_step_served=s.max_step_served,
                   timeline=[Segment.from_proto(x) for x in s.timeline],
                   plateau_state=(s.plateau_state
                                  if s.HasField("plateau_state") else None),
                   superseded=[Segment.from_proto(x) for x in s.superseded],
                   forked_from=(s.forked_from
                                if s.HasField("forked_from") else None),
                   lineage=s.lineage,
                   rewinds=[Rewind.from_proto(x) for x in s.rewinds],
                   proto=s)

    def checkpoint_bound(self, lineage: int) -> Optional[int]:
        """The lowest step a rewind since `lineage` went back to: a
        checkpoint of that lineage saved below it is on this one too. None
        when the schedule was not rewound since (or `lineage` is not
        one of its lineages)."""
        later = [r.to_step for r in self.rewinds if r.lineage > lineage]
        return min(later) if later else None


@dataclass(frozen=True)
class Advanced:
    """The answer of Advance: the new position and the step result there."""

    position: int
    result: StepResult
    revision: int
    lineage: int = 0


@dataclass(frozen=True)
class MetricReport:
    """The metrics reported at one step (ReportMetrics, ListMetricReports).

    `revision` is the schedule revision in force when the step was last
    reported, `report_time` when that was (UTC). Values are as reported,
    NaN and infinities included.
    """

    step: int
    metrics: Dict[str, float]
    revision: int
    report_time: datetime.datetime
    lineage: int = 0  # the schedule's lineage when it was last reported

    @classmethod
    def from_proto(cls, r: resources_pb2.MetricReport) -> "MetricReport":
        return cls(step=r.step, metrics=dict(r.metrics), revision=r.revision,
                   lineage=r.lineage,
                   report_time=r.report_time.ToDatetime(
                       tzinfo=datetime.timezone.utc))
