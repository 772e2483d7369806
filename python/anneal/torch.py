"""anneal.torch.AnnealLR: a PyTorch LR scheduler served by an anneal schedule.

It follows PyTorch's conventions, so it drops into an existing loop:

    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    scheduler = AnnealLR(optimizer, "resnet-1", client=anneal.Client())
    for batch in loader:
        loss(batch).backward()
        optimizer.step()
        scheduler.step()

* After t calls of step(), every group's lr is the schedule's lr(t) (the
  anneal step convention is PyTorch's: docs/conventions.md). Construction
  applies lr(0), as PyTorch schedulers do.
* Param groups scale relative to their base LR (`initial_lr`): a group whose
  base equals the schedule's max_lr (of the spec it was created with) gets
  the served LR itself, bit for bit; any other group gets served_lr *
  (base / max_lr). This is how CosineAnnealingWarmRestarts treats groups
  (with eta_min = 0), and a head with a 10x base LR keeps its 10x.
* When the schedule cycles momentum, every group's `momentum` (SGD) or
  `betas[0]` (Adam and friends) is set, as OneCycleLR and CyclicLR do, and
  with `betas` also `beta1_bias_correction`, the exact first-moment
  correction that anneal.adam.ExactAdam applies (stock Adam ignores it).
* On a `restart` step the optimizer's momentum is reset (SGD momentum
  buffers zeroed; Adam's exp_avg too if reset_exp_avg). On by default, as the
  seed text recommends.
* After the last update of a cycle (the one that used the `snapshot` step's
  LR, the cycle's minimum), `on_snapshot(result)` is called: the moment to
  save a snapshot-ensemble or SWA checkpoint (anneal.swa has helpers).
* state_dict() / load_state_dict() carry the step, so a checkpoint resumes
  at the right step (no hidden state: the schedule is a function of t).
* report(loss=...) records training metrics at the current step on the
  server (ReportMetrics) without waiting: anneal.reporter sends them from a
  background thread and rides out outages.

A normal step makes no RPC: steps come from a prefetched window (see
anneal.window for why that is always correct, and for outages).
"""

from __future__ import annotations

import dataclasses
import logging
import os
import random
import time
import warnings
import weakref
from typing import Any, Callable, Dict, List, Mapping, Optional, Tuple

import torch
from torch.optim import Optimizer

try:  # torch >= 2.0 exports the base class under its public name
    from torch.optim.lr_scheduler import LRScheduler as _Base
except ImportError:  # torch 1.13 (Debian 12)
    from torch.optim.lr_scheduler import _LRScheduler as _Base

from anneal.adam import BETA1_PRODUCT
from anneal.change_watch import ChangeWatch
from anneal.client import Client, SpecLike, schedule_name, to_spec
from anneal.errors import (AlreadyExistsError, AnnealError, NotFoundError,
                           UnavailableError)
from anneal.fallback import LocalTimeline, find_annealctl
from anneal.reporter import MetricReporter
from anneal.results import (FLAG_HAS_MOMENTUM, FLAG_RESTART, FLAG_SNAPSHOT,
                            Advanced, Phase, Schedule, Segment, StepRange,
                            StepResult)
from anneal.window import AnnealOutageWarning, Backoff, Prefetcher

log = logging.getLogger("anneal")

_SIGNALS = FLAG_RESTART | FLAG_SNAPSHOT | FLAG_HAS_MOMENTUM

StepCallback = Callable[[StepResult], None]


def _global_rank() -> Optional[int]:
    """This process's global rank in torch.distributed, None outside it."""
    dist = torch.distributed
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank()
    return None


class _SharedWindow:
    """AnnealLR's windows fetched by one rank and broadcast to the others
    (fetch="rank0": global rank 0 for all; "node": each node's local rank 0
    for its node). range_at(t) is a collective: every rank of the group
    calls it at the same step and gets the same range, [t, t + window)."""

    def __init__(self, mode: str, fetch: Callable[[int, int], StepRange],
                 window: int, fallback: Optional[Callable[[int, int],
                                                          StepRange]],
                 backoff: Backoff, block_timeout: Optional[float]) -> None:
        dist = torch.distributed
        rank = dist.get_rank()
        self.group: Any = None
        self.source = 0
        if mode == "node":
            local = os.environ.get("LOCAL_WORLD_SIZE")
            if not local or dist.get_world_size() % int(local):
                raise ValueError(
                    "fetch='node' needs LOCAL_WORLD_SIZE (set by torchrun) "
                    "dividing the world size (%d), got %r" %
                    (dist.get_world_size(), local))
            size = int(local)
            # Collective: every rank creates every node's group, in order
            # (dist.new_subgroups would do it, but only with CUDA in 1.13).
            for first in range(0, dist.get_world_size(), size):
                group = dist.new_group(list(range(first, first + size)))
                if first <= rank < first + size:
                    self.group = group
            self.source = rank // size * size
        self.is_source = rank == self.source
        self._fetch = fetch
        self._fallback = fallback
        self._window = window
        self._backoff = backoff
        self._block_timeout = block_timeout
        self.fetches = 0  # windows this rank fetched from the server

    def _fetch_or_fallback(self, t: int) -> StepRange:
        started = time.monotonic()
        attempt = 0
        while True:
            try:
                r = self._fetch(t, self._window)
                self.fetches += 1
                return r
            except UnavailableError:
                if self._fallback is not None:
                    return self._fallback(t, self._window)
                if (self._block_timeout is not None and
                        time.monotonic() - started > self._block_timeout):
                    raise
                time.sleep(self._backoff.delay(attempt))
                attempt += 1

    def range_at(self, t: int) -> StepRange:
        box: List[Any] = [None]
        if self.is_source:
            try:
                box[0] = self._fetch_or_fallback(t)
            except Exception as e:  # noqa: BLE001 - raised on every rank
                box[0] = e
        torch.distributed.broadcast_object_list(box, src=self.source,
                                                group=self.group)
        if isinstance(box[0], Exception):
            raise box[0]
        return box[0]


def advance(client: Client, schedule: str, *, request_id: str = "",
            timeout: Optional[float] = None) -> Advanced:
    """Client.advance for a torch.distributed job: every rank calls it at
    the same point, global rank 0 advances the server's counter once, and
    every rank gets rank 0's answer (one broadcast_object_list). An error on
    rank 0 is raised on every rank. Outside torch.distributed it is
    client.advance."""
    dist = torch.distributed
    if not (dist.is_available() and dist.is_initialized()) or \
            dist.get_world_size() == 1:
        return client.advance(schedule, request_id=request_id,
                              timeout=timeout)
    box: List[Any] = [None]
    if dist.get_rank() == 0:
        try:
            box[0] = client.advance(schedule, request_id=request_id,
                                    timeout=timeout, allow_multi_rank=True)
        except AnnealError as e:
            box[0] = e
    dist.broadcast_object_list(box, src=0)
    if isinstance(box[0], Exception):
        raise box[0]
    return box[0]


def _world_size() -> int:
    """The number of processes in torch.distributed, 1 outside it."""
    dist = torch.distributed
    if dist.is_available() and dist.is_initialized():
        return dist.get_world_size()
    return 1


def _offline_schedule(name: str, spec: Any) -> Schedule:
    """The schedule an offline start assumes: `spec` from step 0."""
    segment = Segment(from_step=0, spec=spec, time_origin=0, cycle_offset=0,
                      kind="CREATE", revision=0, actor="", reason="offline")
    return Schedule(name=name, spec=spec, display_name="", labels={},
                    etag="", revision=0, position=0, max_step_served=-1,
                    timeline=[segment])


def _short(spec: Any) -> str:
    """A spec on one line, cut short for an error message."""
    text = " ".join(str(spec).split())
    return text if len(text) <= 120 else text[:117] + "..."


def _weak(ref: "weakref.ref[AnnealLR]", method: str) -> Callable[..., Any]:
    """A call of ref().method that fails (not retryably) once the scheduler
    is gone, so the prefetcher thread stops instead of keeping it alive."""
    def call(*args: Any) -> Any:
        obj = ref()
        if obj is None:
            raise ReferenceError("the AnnealLR scheduler was collected")
        return getattr(obj, method)(*args)
    return call


def _finalize(prefetcher: Prefetcher, reporter: MetricReporter,
              client: Optional[Client],
              watch: Optional["ChangeWatch"] = None) -> None:
    if watch is not None:
        watch.close()
    prefetcher.close()
    reporter.close()
    if client is not None:
        client.close()


class AnnealLR(_Base):
    """Sets each group's LR (and momentum) from the anneal schedule `schedule`.

    Args:
      optimizer: the wrapped optimizer.
      schedule: the schedule id ("resnet-1") or name ("schedules/resnet-1").
      client: an anneal.Client (default: Client(target)).
      target: HOST:PORT when no client is given (default $ANNEAL_SERVER).
      window: steps prefetched per EvaluateRange (default 256). Also the
        bound, in steps, on how late a schedule change made on the server
        reaches this job (docs/python-client.md).
      refresh_after: steps of a window used before the background refresh
        (default window // 2; in a torch.distributed job of several ranks,
        each rank's own point in [window // 4, 3 * window // 4], so that
        their fetches are spread over many steps).
      prefetch: False makes every step a blocking Evaluate call (for
        comparison; a change then applies from the next step).
      watch: follow the schedule's changes as they happen (WatchSchedules):
        an update or a restart triggers a refresh at the next step, so
        `revision` follows it one fetch later instead of up to
        refresh_after steps later. The LRs applied are the same either way.
      batch_size: the job's batch size, for specs with batch_scaling.
      reset_momentum: zero SGD momentum buffers on restart steps. Default
        (None): on, as the seed text recommends for SGDR, unless the spec in
        force at construction is the cyclic family, whose every cycle start
        is flagged a restart but which PyTorch's CyclicLR (like triangular
        CLR) runs without resets. docs/python-client.md has the porting
        table: what to pass for each PyTorch scheduler's exact behaviour.
      reset_exp_avg: also zero Adam's exp_avg on restart steps. The served
        beta1_bias_correction assumes the spec's
        momentum.restart_bias_correction matches (a warning says when not).
      on_snapshot: called with the snapshot step's StepResult once the
        cycle's last update has been applied.
      on_restart: called with the restart step's StepResult, after the reset.
      local_fallback: when the server is unreachable and the window is used
        up, evaluate the last known timeline locally with annealctl instead of
        blocking.
      annealctl: path of annealctl (default $ANNEAL_BUILD_DIR/bin/annealctl,
        else annealctl on PATH).
      block_timeout: seconds to block on an exhausted window before raising
        ServerUnreachableError (default None: wait for ever).
      rpc_timeout: the deadline of every call, in seconds.
      backoff: retry delays while the server is unreachable.
      last_epoch: as PyTorch: -1 to start, or the step to resume at.
      offline_spec: with local_fallback, a spec to start from when the
        server is unreachable at construction (default: create_if_missing):
        the job starts offline on that spec's timeline from step 0 and
        takes the server's values once it answers (the steps it applied
        offline are then compared with the server's, as after any outage).
        Without one, an unreachable server at construction raises
        UnavailableError.
      create_if_missing: a spec: creates the schedule when it does not exist
        (every rank of a job may ask at once: one creates, the others find
        it), and accepts an existing one only when the spec it was created
        with equals this one, else ValueError. So a job restarted by an
        elastic launcher comes back to its own schedule.
      fetch: who fetches the window in a torch.distributed job: "every_rank"
        (the default: each rank its own, in the background), "rank0" (global
        rank 0 fetches each window and broadcasts it to all ranks, one
        broadcast_object_list per window, at the same step on every rank),
        or "node" (local rank 0 of each node, for its node's ranks; needs
        torchrun's LOCAL_WORLD_SIZE and ranks numbered node by node). With
        "rank0" and "node" a schedule change reaches the job at the next
        window, not through a watch.
      report_from: which ranks of a torch.distributed job send report():
        "rank0" (the default: the global rank 0 only, so that a step is
        reported once), "all" (every rank; a later report of the same step
        replaces the earlier), or "per_rank" (every rank, each metric
        renamed NAME/rankR). Without torch.distributed, the one process.

    A group whose "lr" is a tensor (compiled or capturable optimizers) has
    it updated in place (fill_), so the optimizer is not recompiled. The
    scheduler holds a channel and threads: it cannot be pickled or copied
    (TypeError); checkpoint state_dict() instead.
    """

    def __init__(self, optimizer: Optimizer, schedule: str, *,
                 client: Optional[Client] = None, target: Optional[str] = None,
                 window: int = 256, refresh_after: Optional[int] = None,
                 prefetch: bool = True, watch: bool = True,
                 batch_size: Optional[int] = None,
                 reset_momentum: Optional[bool] = None,
                 reset_exp_avg: bool = False,
                 on_snapshot: Optional[StepCallback] = None,
                 on_restart: Optional[StepCallback] = None,
                 local_fallback: bool = False, annealctl: Optional[str] = None,
                 block_timeout: Optional[float] = None,
                 rpc_timeout: float = 5.0, backoff: Backoff = Backoff(),
                 last_epoch: int = -1,
                 create_if_missing: Optional[SpecLike] = None,
                 report_from: str = "rank0",
                 offline_spec: Optional[SpecLike] = None,
                 fetch: str = "every_rank") -> None:
        if report_from not in ("rank0", "all", "per_rank"):
            raise ValueError("report_from: must be 'rank0', 'all' or "
                             "'per_rank', got %r" % (report_from,))
        if fetch not in ("every_rank", "rank0", "node"):
            raise ValueError("fetch: must be 'every_rank', 'rank0' or 'node', "
                             "got %r" % (fetch,))
        self.report_from = report_from
        self._own_client = client is None
        self.client = client if client is not None else Client(target)
        self.schedule = schedule_name(schedule)
        self.batch_size = batch_size
        self.reset_momentum = bool(reset_momentum)
        self.reset_exp_avg = reset_exp_avg
        self.on_snapshot = on_snapshot
        self.on_restart = on_restart
        self.rpc_timeout = rpc_timeout
        self.revision: Optional[int] = None
        # The lineage this job runs on (Schedule.lineage), sent with every
        # fetch and report so that a rewind stops it (StaleLineageError)
        # instead of serving it another lineage's LRs. None until known.
        self.lineage: Optional[int] = None
        self._momentum_key = ("betas" if "betas" in optimizer.defaults else
                              "momentum" if "momentum" in optimizer.defaults
                              else None)
        self._warned_momentum = False
        self._warned_stock_reset = False

        self._create_spec = create_if_missing
        # Set while the schedule's existence is not known (an offline
        # start): the first fetch that finds the server ensures it.
        self._ensure_pending = False
        try:
            info = self._ensure(create_if_missing, rpc_timeout)
            self.lineage = info.lineage
        except UnavailableError as e:
            start_spec = (offline_spec if offline_spec is not None
                          else create_if_missing)
            if not local_fallback or start_spec is None:
                raise
            info = _offline_schedule(self.schedule, to_spec(start_spec))
            self._ensure_pending = create_if_missing is not None
            warnings.warn(AnnealOutageWarning(
                "anneal: %s is unreachable (%s); starting offline on the "
                "given spec, and the server's values once it answers" %
                (self.schedule, e)), stacklevel=2)
        # The reference for group scaling: the max_lr the schedule was
        # created with. It does not move when an operator changes max_lr
        # later, so such a change scales every group alike.
        first = info.timeline[0].spec if info.timeline else info.spec
        self._reference_lr = first.max_lr
        if reset_momentum is None:
            reset_momentum = info.spec.WhichOneof("curve") != "cyclic"
        self.reset_momentum = reset_momentum
        self._check_exp_avg_reset(info.spec)

        self._timeline: Optional[LocalTimeline] = None
        fallback = None
        if local_fallback:
            path = find_annealctl(annealctl)
            if path is None:
                raise ValueError("local_fallback needs annealctl: pass "
                                 "annealctl=PATH, set ANNEAL_BUILD_DIR, or put "
                                 "it on PATH")
            self._annealctl = path
            self._timeline = LocalTimeline(info.timeline, path,
                                           batch_size=batch_size,
                                           revision=info.revision)
            fallback = self._local_range

        if refresh_after is None:
            refresh_after = window // 2 if prefetch else 0
            world = _world_size()
            if prefetch and world > 1 and window >= 8:
                # Ranks step together: spread their refreshes over the
                # middle half of the window (a fixed draw per rank), so a
                # thousand ranks do not all fetch at the same step.
                rank = _global_rank() or 0
                jitter = random.Random(rank * 7919 + world).randint(
                    -(window // 4), window // 4)
                refresh_after = min(window - 1, max(0, refresh_after + jitter))
        # The prefetcher's thread must not keep the scheduler alive: it gets
        # weak references, and the thread ends when the scheduler is
        # collected (or closed).
        ref = weakref.ref(self)
        self._prefetcher = Prefetcher(
            _weak(ref, "_fetch_range" if prefetch else "_fetch_one"),
            window=window if prefetch else 1,
            refresh_after=refresh_after if prefetch else 0,
            backoff=backoff, block_timeout=block_timeout,
            fallback=_weak(ref, "_local_range") if fallback else None,
            on_fetched=_weak(ref, "_on_fetched") if local_fallback else None,
            synchronous=not prefetch, describe="anneal %s" % self.schedule)
        # Its thread starts with the first report() and holds no reference
        # to the scheduler.
        self.reporter = MetricReporter(self.client, self.schedule,
                                       rpc_timeout=rpc_timeout,
                                       backoff=backoff)
        self.reporter.lineage = self.lineage
        # fetch="rank0"/"node": windows come from one rank, in lockstep.
        self._shared: Optional[_SharedWindow] = None
        if fetch != "every_rank" and _world_size() > 1:
            self._shared = _SharedWindow(
                fetch, _weak(ref, "_fetch_range"), window,
                _weak(ref, "_local_range") if fallback else None,
                backoff, block_timeout)
            watch = False
        self._watch: Optional[ChangeWatch] = None
        if watch and prefetch:
            self._watch = ChangeWatch(self.client, self.schedule,
                                      _weak(ref, "_on_change"))
        # close() calls it too, so whatever comes first does it, once.
        self._finalizer = weakref.finalize(
            self, _finalize, self._prefetcher, self.reporter,
            self.client if self._own_client else None, self._watch)

        # The step path's state: the range in use, unpacked into attributes
        # so that step() is a few lookups (see step()).
        self._range: Optional[StepRange] = None
        self._lo = 0
        self._lr: List[float] = []
        self._flags: List[int] = []
        self._momentum: Optional[List[float]] = None
        self._bias: Optional[List[float]] = None
        self._refresh_at = -1  # < any step: the first step() fetches
        self._snap: Optional[StepResult] = None  # snapshot of the last step
        self._pairs: List[Tuple[Dict[str, Any], Optional[float]]] = []
        self._float_pairs: List[Tuple[Dict[str, Any], Optional[float]]] = []
        self._tensor_lrs: List[Tuple[torch.Tensor, Optional[float]]] = []
        super().__init__(optimizer, last_epoch)

    def __reduce_ex__(self, protocol: Any) -> Any:
        raise TypeError(
            "AnnealLR cannot be pickled or copied: it holds a gRPC channel "
            "and background threads. Checkpoint scheduler.state_dict(), and "
            "on resume build a new AnnealLR and load_state_dict() it")

    def _ensure(self, spec: Optional[SpecLike], timeout: float) -> Any:
        """The schedule, created from `spec` first when it is missing."""
        if spec is None:
            return self.client.get(self.schedule, timeout=timeout)
        wanted = to_spec(spec)
        # Another rank's create may be answered ALREADY_EXISTS to us while
        # it is still being made durable: the schedule is then not visible
        # yet (or never, if that create fails). Look again for a while.
        deadline = time.monotonic() + max(timeout, 5.0)
        delay = 0.01
        while True:
            try:
                info = self.client.get(self.schedule, timeout=timeout)
                break
            except NotFoundError:
                if time.monotonic() > deadline:
                    raise
            try:
                return self.client.create(
                    self.schedule.split("/", 1)[1], wanted, timeout=timeout,
                    reason="AnnealLR create_if_missing")
            except AlreadyExistsError:  # another rank was first
                time.sleep(delay)
                delay = min(2 * delay, 0.2)
        created = info.timeline[0].spec if info.timeline else info.spec
        if created != wanted:
            raise ValueError(
                "create_if_missing: %s exists but was created with a "
                "different spec (%s) than this job's (%s); use another "
                "schedule name, or drop create_if_missing to follow it as "
                "it is" % (self.schedule, _short(created), _short(wanted)))
        return info

    # -- PyTorch's interface ----------------------------------------------

    def _initial_step(self) -> None:
        # base_lrs exist now (the base class set them): bind the groups
        # before the base class's first step().
        self._bind_groups()
        super()._initial_step()

    def step(self, epoch: Optional[int] = None,  # type: ignore[override]
             **host_kwargs: Any) -> None:
        """Moves to the next step and applies its LR (the hot path).

        A step inside the window is an index, one dict write per group and
        a flags test; only a step with a signal (restart, snapshot, cycled
        momentum) or at the refresh point goes further. Keyword arguments
        hosts pass (DeepSpeed's lr_kwargs, its increment=) are accepted and
        ignored: anneal's clock counts optimizer steps.
        """
        if epoch is not None:
            self._jump(int(epoch))
            return
        t = self.last_epoch + 1
        self.last_epoch = t
        if t >= self._refresh_at:
            self._sync(t)
        i = t - self._lo
        lr = self._lr[i]
        for group, ratio in self._float_pairs:
            group["lr"] = lr if ratio is None else lr * ratio
        for tensor, ratio in self._tensor_lrs:
            tensor.fill_(lr if ratio is None else lr * ratio)
        if self._flags[i] & _SIGNALS or self._snap is not None:
            self._signals(t, i)

    def get_last_lr(self) -> List[float]:
        """The LRs the last step() set, one per group."""
        lr = self._lr[self.last_epoch - self._lo]
        return [lr if r is None else lr * r for _, r in self._pairs]

    def get_lr(self) -> List[float]:
        return self.get_last_lr()

    def state_dict(self) -> Dict[str, Any]:
        """What a checkpoint needs: the step (the schedule is a function of
        it), the group bases, and a snapshot not yet reported."""
        return {
            "format": "anneal.torch.AnnealLR/1",
            "schedule": self.schedule,
            "last_epoch": self.last_epoch,
            "base_lrs": list(self.base_lrs),
            "reference_lr": self._reference_lr,
            "revision": self.revision,
            "lineage": self.lineage,
            "pending_snapshot": (dataclasses.asdict(self._snap)
                                 if self._snap is not None else None),
        }

    def load_state_dict(self, state_dict: Dict[str, Any]) -> None:
        """Resumes at the saved step: fetches the window there and applies
        that step's LR (and momentum) to the groups, without repeating its
        restart reset or callbacks (they ran before the checkpoint).

        A state saved under another schedule loads only if this schedule
        was forked from it (Client.fork) at a step after the saved one:
        population-based training's exploit, where the trial resumes from
        the donor's checkpoint on a fork that served the donor's LRs.

        A state saved on an earlier lineage (before a RewindSchedule) loads
        only below the step the schedule was rewound to: the rollback, where
        the job resumes from the checkpoint before the spike on the new
        lineage. Above it the checkpoint holds the old lineage's steps, and
        ValueError says which step to rewind to instead."""
        saved = state_dict.get("schedule")
        if saved not in (None, self.schedule):
            self.check_forked_from(saved, int(state_dict["last_epoch"]))
        elif state_dict.get("lineage") is not None:
            self.check_lineage(int(state_dict["lineage"]),
                               int(state_dict["last_epoch"]))
        self.last_epoch = int(state_dict["last_epoch"])
        self.base_lrs = list(state_dict["base_lrs"])
        self._reference_lr = state_dict["reference_lr"]
        snap = state_dict.get("pending_snapshot")
        self._snap = (StepResult(**dict(snap, phase=Phase(snap["phase"])))
                      if snap is not None else None)
        self._bind_groups(warn=False)
        t = self.last_epoch
        self._sync(t, force=True)
        i = t - self._lo
        self._apply_lr(self._lr[i])
        if self._flags[i] & FLAG_HAS_MOMENTUM and self._momentum is not None:
            self._set_momentum(
                self._momentum[i],
                self._bias[i] if self._bias is not None else None)

    def check_forked_from(self, saved: str,
                          last_epoch: Optional[int] = None) -> None:
        """Raises ValueError unless this schedule was forked from `saved`
        (below `last_epoch` + 1, when given): a checkpoint of `saved` can
        then resume here."""
        origin = self.client.get(self.schedule).forked_from
        if origin is None or origin.source != saved:
            raise ValueError("this state is for %s, not %s (which was not "
                             "forked from it)" % (saved, self.schedule))
        if last_epoch is not None and last_epoch >= origin.at_step:
            raise ValueError(
                "this state of %s is at step %d, but %s was forked from it "
                "at step %d: only steps below that have the donor's LRs "
                "(fork at step %d to resume from this checkpoint)" %
                (saved, last_epoch, self.schedule, origin.at_step,
                 last_epoch + 1))

    def check_lineage(self, saved: int, last_epoch: int) -> None:
        """Raises ValueError unless a checkpoint of lineage `saved` at step
        `last_epoch` resumes on the schedule's current lineage (it is that
        lineage, or a rewind since went back past the checkpoint's step);
        then runs this job on the current lineage."""
        info = self.client.get(self.schedule, timeout=self.rpc_timeout)
        if saved != info.lineage:
            if saved > info.lineage:
                raise ValueError(
                    "this state is of lineage %d of %s, which is on lineage "
                    "%d (was it deleted and created again?)" %
                    (saved, self.schedule, info.lineage))
            bound = info.checkpoint_bound(saved)
            if bound is not None and last_epoch >= bound:
                raise ValueError(
                    "this state of %s is at step %d of lineage %d, but the "
                    "schedule was rewound to step %d since (it is on lineage "
                    "%d): only a checkpoint below that step resumes on it "
                    "(rewind to step %d to resume from this one)" %
                    (self.schedule, last_epoch, saved, bound, info.lineage,
                     last_epoch + 1))
        if self.lineage != info.lineage:
            self.lineage = info.lineage
            self.reporter.lineage = info.lineage
            self._prefetcher.discard()  # fetched on the lineage left
            self._range = None

    # -- what anneal adds ---------------------------------------------------

    @property
    def last_result(self) -> StepResult:
        """The StepResult of the current step (cycle, phase, restart,
        snapshot, momentum), for logging."""
        assert self._range is not None
        return self._range.result(self.last_epoch)

    @property
    def prefetcher(self) -> Prefetcher:
        """The window (counters: fetches, failures, local_ranges)."""
        return self._prefetcher

    def noise_std(self, grad_norm_sq: float, num_params: int) -> Optional[float]:
        """The thermostat's gradient noise for the current step: one Evaluate
        call (ranges carry no noise, since it depends on |g|^2)."""
        r = self.client.evaluate(self.schedule, self.last_epoch,
                                 batch_size=self.batch_size,
                                 grad_norm_sq=grad_norm_sq,
                                 num_params=num_params,
                                 timeout=self.rpc_timeout)
        return r.noise_std

    def report(self, metrics: Optional[Mapping[str, Any]] = None, *,
               step: Optional[int] = None, **named: Any) -> None:
        """Records training metrics on the server, without waiting:

            scheduler.report(loss=loss.item(), acc=acc)

        `step` defaults to the current step (last_epoch); a metric named
        "step" goes in the `metrics` mapping. Call it before
        scheduler.step() to label a loss with the step whose LR the update
        that follows uses (the loss of the model after `step` updates). Values
        may be tensors (float() is taken here, which waits for the device)
        or numbers; NaN and infinities are recorded as they are. A bad name,
        or more than 64 metrics at the step, raises ValueError. Delivery,
        retries and outages: anneal.reporter (counters on self.reporter)."""
        values = dict(metrics or {}, **named)
        rank = _global_rank()
        if rank is not None and rank != 0:
            if self.report_from == "rank0":
                self.reporter.skipped_other_rank += 1
                return
            if self.report_from == "per_rank":
                values = {"%s/rank%d" % (k, rank): v for k, v in values.items()}
        self.reporter.report(self.last_epoch if step is None else step,
                             values)

    def close(self) -> None:
        """Sends queued metric reports (up to 5 s), stops the background
        threads (and the client, if it made one). Also done when the
        scheduler is garbage-collected, and at interpreter exit; only once."""
        self._finalizer()

    # -- internals ----------------------------------------------------------

    def _apply_lr(self, lr: float) -> None:
        for group, ratio in self._float_pairs:
            group["lr"] = lr if ratio is None else lr * ratio
        for tensor, ratio in self._tensor_lrs:
            tensor.fill_(lr if ratio is None else lr * ratio)

    def _bind_groups(self, warn: bool = True) -> None:
        ref = self._reference_lr
        # A tensor base (a tensor "lr") as the number it holds; a float32
        # tensor holding max_lr as closely as float32 can is max_lr.
        bases = [(ref if bool(b == torch.tensor(ref, dtype=b.dtype))
                  else float(b)) if isinstance(b, torch.Tensor) else b
                 for b in self.base_lrs]
        self._pairs = [(g, None if base == ref else base / ref)
                       for g, base in zip(self.optimizer.param_groups, bases)]
        self._float_pairs = [(g, r) for g, r in self._pairs
                             if not isinstance(g["lr"], torch.Tensor)]
        self._tensor_lrs = [(g["lr"], r) for g, r in self._pairs
                            if isinstance(g["lr"], torch.Tensor)]
        if warn and self._pairs and self._pairs[0][1] is not None:
            warnings.warn(
                "anneal: param group 0 has base lr %r but %s was created with "
                "max_lr %r: its LRs are the served ones scaled by %r (create "
                "the optimizer with lr=max_lr to apply the served LRs as they "
                "are)" % (self.base_lrs[0], self.schedule, ref,
                          self._pairs[0][1]), stacklevel=4)

    def _sync(self, t: int, force: bool = False) -> None:
        if self._shared is not None:
            # Every rank is here at the same step: the ranges are the same
            # on all of them, and so are the points where they run out.
            r = self._shared.range_at(t)
            self._install(r, t)
            self._refresh_at = r.end_step
            return
        r = self._prefetcher.ensure(t, None if force else self._range)
        self._install(r, t)
        self._refresh_at = (t + 1 if self._prefetcher.awaiting_refresh else
                            self._prefetcher.refresh_point(r))

    def _install(self, r: StepRange, t: int) -> None:
        if r is not self._range:
            self._range = r
            self._lo = r.start_step
            self._lr = r.lr
            self._flags = r.flags
            self._momentum = r.momentum
            self._bias = r.beta1_bias_correction
            if r.revision is not None and r.revision != self.revision:
                if self.revision is not None:
                    log.info("%s: revision %d -> %d (fetched at step %d)",
                             self.schedule, self.revision, r.revision, t)
                self.revision = r.revision

    def _on_change(self, revision: int) -> None:
        """The watch's thread: the schedule is at `revision`."""
        if self.revision is not None and revision > self.revision:
            self._prefetcher.refresh_soon()
            self._refresh_at = -1  # the next step() consults the prefetcher

    def _jump(self, t: int) -> None:
        """step(epoch): PyTorch's deprecated absolute form; no callbacks."""
        self._snap = None
        self.last_epoch = t - 1
        if self._range is None or not self._range.covers(t):
            self._refresh_at = -1
        self.step()

    def _signals(self, t: int, i: int) -> None:
        snap = self._snap
        if snap is not None:
            self._snap = None
            if self.on_snapshot is not None:
                self.on_snapshot(snap)
        f = self._flags[i]
        if f & FLAG_HAS_MOMENTUM and self._momentum is not None:
            self._set_momentum(
                self._momentum[i],
                self._bias[i] if self._bias is not None else None)
        if f & FLAG_RESTART:
            if self.reset_momentum or self.reset_exp_avg:
                self._reset_optimizer_state()
            if self.on_restart is not None:
                self.on_restart(self._range.result(t))  # type: ignore[union-attr]
        if f & FLAG_SNAPSHOT:
            self._snap = self._range.result(t)  # type: ignore[union-attr]

    def _check_exp_avg_reset(self, spec: Any) -> None:
        """Warns when the served bias correction and the exp_avg reset
        disagree: the first update after each restart would be off by up to
        1/(1 - beta1) (docs/conventions.md, Momentum and Adam)."""
        if self._momentum_key != "betas" or not spec.HasField("momentum"):
            return
        restarts = spec.momentum.restart_bias_correction
        if restarts != self.reset_exp_avg:
            warnings.warn(
                "anneal: %s has momentum.restart_bias_correction=%s but "
                "reset_exp_avg=%s: its beta1_bias_correction %s exp_avg "
                "across restarts, which this scheduler %s" % (
                    self.schedule, str(restarts).lower(), self.reset_exp_avg,
                    "restarts with" if restarts else "assumes a continuing",
                    "does not do" if restarts else "zeroes"), stacklevel=3)

    def _set_momentum(self, m: float, b1: Optional[float] = None) -> None:
        key = self._momentum_key
        if key == "betas":
            for group, _ in self._pairs:
                group["betas"] = (m, *group["betas"][1:])
                if b1 is not None:
                    group["beta1_bias_correction"] = b1
        elif key == "momentum":
            for group, _ in self._pairs:
                group["momentum"] = m
        elif not self._warned_momentum:
            self._warned_momentum = True
            warnings.warn("anneal: %s cycles momentum but %s has neither "
                          "'momentum' nor 'betas'; momentum is not applied" %
                          (self.schedule, type(self.optimizer).__name__))

    def _reset_optimizer_state(self) -> None:
        for state in self.optimizer.state.values():
            if self.reset_momentum:
                buf = state.get("momentum_buffer")
                if isinstance(buf, torch.Tensor):
                    buf.zero_()
            if self.reset_exp_avg:
                avg = state.get("exp_avg")
                if isinstance(avg, torch.Tensor):
                    avg.zero_()
                    if BETA1_PRODUCT in state:  # ExactAdam, ExactBiasCorrection
                        state[BETA1_PRODUCT] = 1.0
                    elif not self._warned_stock_reset:
                        self._warned_stock_reset = True
                        warnings.warn(
                            "anneal: %s zeroed exp_avg at a restart, but %s "
                            "keeps dividing it by 1 - beta1**k over every step "
                            "since the start, so the next updates are up to "
                            "1/(1 - beta1) too small; use anneal.adam.ExactAdam "
                            "or wrap the optimizer in "
                            "anneal.adam.ExactBiasCorrection" %
                            (self.schedule, type(self.optimizer).__name__),
                            stacklevel=4)

    # Called by the prefetcher (the background thread, or the caller's in
    # the synchronous mode).

    def _learn_lineage(self) -> None:
        """A job started offline learns its lineage from the server."""
        if self.lineage is None and not self._ensure_pending:
            info = self.client.get(self.schedule, timeout=self.rpc_timeout)
            self.lineage = self.reporter.lineage = info.lineage

    def _fetch_range(self, start: int, count: int) -> StepRange:
        # Lists on the step path: indexing a list is several times cheaper
        # than indexing a numpy array (and converting a window is cheap).
        try:
            self._learn_lineage()
            r = self.client.evaluate_range(self.schedule, start, count,
                                           batch_size=self.batch_size,
                                           inspect_only=False,
                                           lineage=self.lineage,
                                           timeout=self.rpc_timeout)
        except NotFoundError:
            if not self._ensure_pending:
                raise
            # Started offline: the server is back and the schedule is not
            # there yet. Create it (or find another rank's), then fetch.
            info = self._ensure(self._create_spec, self.rpc_timeout)
            self._ensure_pending = False
            self.lineage = self.reporter.lineage = info.lineage
            r = self.client.evaluate_range(self.schedule, start, count,
                                           batch_size=self.batch_size,
                                           inspect_only=False,
                                           lineage=self.lineage,
                                           timeout=self.rpc_timeout)
        self._ensure_pending = False
        return r.as_lists()

    def _fetch_one(self, start: int, count: int) -> StepRange:
        self._learn_lineage()
        r = self.client.evaluate(self.schedule, start,
                                 batch_size=self.batch_size,
                                 lineage=self.lineage,
                                 timeout=self.rpc_timeout)
        return StepRange.from_results([r], revision=r.revision)

    def _local_range(self, start: int, count: int) -> StepRange:
        assert self._timeline is not None
        return self._timeline.evaluate_range(start, count)

    def _on_fetched(self, r: StepRange) -> None:
        """Keeps the fallback's timeline at the revision the server serves."""
        timeline = self._timeline
        if timeline is None or r.revision in (None, timeline.revision):
            return
        try:
            info = self.client.get(self.schedule, timeout=self.rpc_timeout)
        except AnnealError as e:
            log.warning("%s: could not refresh the timeline for the local "
                        "fallback: %s", self.schedule, e)
            return
        self._timeline = LocalTimeline(info.timeline, self._annealctl,
                                       batch_size=self.batch_size,
                                       revision=info.revision)
