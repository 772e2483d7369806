"""anneal.Client: a thin, typed wrapper over anneal.v1.ScheduleService.

Thin on purpose: one method per RPC, one attempt each, a deadline on every
call, typed results (anneal.results) and typed errors (anneal.errors). Policy
(prefetching, retries, fallback) lives in the torch scheduler, which is the
one caller that needs it.
"""

from __future__ import annotations

import os
import sys
from typing import (Any, Dict, Iterator, List, Mapping, Optional, Sequence, Tuple,
                    Union)

import grpc
from google.protobuf import field_mask_pb2, json_format

from anneal.errors import from_rpc_error
from anneal.results import (Advanced, MetricReport, Schedule, StepRange,
                            StepResult)
from anneal.v1 import (resources_pb2, schedule_pb2, service_pb2,
                       service_pb2_grpc)

SpecLike = Union[schedule_pb2.ScheduleSpec, Mapping[str, Any], str]

DEFAULT_TARGET = "127.0.0.1:50051"

# Ranges longer than this are fetched as pieces of this many steps, all at
# once (Client._range); about 3 MB each on the wire.
RANGE_CHUNK_STEPS = 131072

# Reconnect quickly after an outage. gRPC's default reconnect backoff grows to
# 120 s and it re-resolves the target at most every 30 s; while a channel
# waits it fails calls at once, so a restarted server would look unreachable
# for seconds to minutes (measured: 4-9 s for a restart on the same port).
# With these, a client sees a restarted server within about a second.
DEFAULT_CHANNEL_OPTIONS: Tuple[Tuple[str, Any], ...] = (
    ("grpc.max_receive_message_length", 256 << 20),
    ("grpc.initial_reconnect_backoff_ms", 100),
    ("grpc.min_reconnect_backoff_ms", 100),
    ("grpc.max_reconnect_backoff_ms", 1000),
    ("grpc.dns_min_time_between_resolutions_ms", 200),
)


def _distributed_world_size() -> int:
    """The torch.distributed world size when this process has joined one
    (torch imported and the group initialized), else 1. Never imports
    torch itself: the client does not need it."""
    dist = sys.modules.get("torch.distributed")
    try:
        if dist is not None and dist.is_available() and dist.is_initialized():
            return int(dist.get_world_size())
    except (AttributeError, RuntimeError):  # a partial or odd torch
        pass
    return 1


def to_spec(spec: SpecLike) -> schedule_pb2.ScheduleSpec:
    """A ScheduleSpec from a message, a dict in protobuf's JSON mapping
    ({"max_lr": 0.1, "warm_restarts": {"period": 10}}), or a JSON string."""
    if isinstance(spec, schedule_pb2.ScheduleSpec):
        return spec
    out = schedule_pb2.ScheduleSpec()
    if isinstance(spec, str):
        json_format.Parse(spec, out)
    else:
        json_format.ParseDict(dict(spec), out)
    return out


def spec_to_json(spec: schedule_pb2.ScheduleSpec) -> str:
    """The spec as JSON in the form annealctl reads (snake_case names)."""
    return json_format.MessageToJson(spec, preserving_proto_field_name=True)


# "schedules/", from the resource_pattern option of anneal.v1.Schedule
# (resources.proto), where the collection is spelled once for C++ and Python.
SCHEDULES_PREFIX = resources_pb2.Schedule.DESCRIPTOR.GetOptions().Extensions[
    resources_pb2.resource_pattern].split("{")[0]


def schedule_name(schedule: str) -> str:
    """`schedules/{id}` from either the id or the full name."""
    return schedule if schedule.startswith(SCHEDULES_PREFIX) else (
        SCHEDULES_PREFIX + schedule)


def _read(path: str) -> bytes:
    with open(path, "rb") as f:
        return f.read()


def _new_channel(target: str, options: List[Tuple[str, Any]],
                 tls_ca: Optional[str], tls_cert: Optional[str],
                 tls_key: Optional[str]) -> grpc.Channel:
    """Plaintext, or TLS when a CA is given (argument or $ANNEAL_TLS_CA)."""
    tls_ca = tls_ca or os.environ.get("ANNEAL_TLS_CA") or None
    tls_cert = tls_cert or os.environ.get("ANNEAL_TLS_CERT") or None
    tls_key = tls_key or os.environ.get("ANNEAL_TLS_KEY") or None
    if (tls_cert is None) != (tls_key is None):
        raise ValueError("tls_cert and tls_key go together")
    if tls_ca is None:
        if tls_cert is not None:
            raise ValueError("tls_cert needs tls_ca (the server's CA)")
        return grpc.insecure_channel(target, options=options)
    credentials = grpc.ssl_channel_credentials(
        root_certificates=_read(tls_ca),
        private_key=_read(tls_key) if tls_key else None,
        certificate_chain=_read(tls_cert) if tls_cert else None)
    return grpc.secure_channel(target, credentials, options=options)


class Client:
    """A connection to one anneal server.

    target: HOST:PORT; default $ANNEAL_SERVER, else 127.0.0.1:50051.
    timeout: the default deadline of every call, in seconds.
    actor: sent with every change (the server defaults to the peer address;
      a server with tokens records the token's name and keeps this as a note).
    token: the bearer token sent with every call (metadata
      `authorization: Bearer TOKEN`); default $ANNEAL_TOKEN, else none.
    tls_ca: a PEM file of the CA that signed the server's certificate: the
      channel then uses TLS (default $ANNEAL_TLS_CA, else plaintext).
    tls_cert, tls_key: PEM files of a client certificate and its key, for a
      server that asks for one (mutual TLS); default $ANNEAL_TLS_CERT and
      $ANNEAL_TLS_KEY.
    """

    def __init__(self, target: Optional[str] = None, *,
                 timeout: float = 10.0, actor: str = "",
                 channel: Optional[grpc.Channel] = None,
                 options: Sequence[Tuple[str, Any]] = DEFAULT_CHANNEL_OPTIONS,
                 token: Optional[str] = None,
                 tls_ca: Optional[str] = None,
                 tls_cert: Optional[str] = None,
                 tls_key: Optional[str] = None) -> None:
        self.target = target or os.environ.get("ANNEAL_SERVER", DEFAULT_TARGET)
        self.timeout = timeout
        self.actor = actor
        token = os.environ.get("ANNEAL_TOKEN", "") if token is None else token
        self._metadata: Optional[Tuple[Tuple[str, str], ...]] = (
            (("authorization", "Bearer " + token.strip()),)
            if token.strip() else None)
        self._own_channel = channel is None
        if channel is None:
            channel = _new_channel(self.target, list(options), tls_ca,
                                   tls_cert, tls_key)
        self._channel = channel
        self._stub = service_pb2_grpc.ScheduleServiceStub(self._channel)

    # -- plumbing ---------------------------------------------------------

    def _call(self, method: str, request: Any, timeout: Optional[float]) -> Any:
        try:
            return getattr(self._stub, method)(
                request, timeout=self.timeout if timeout is None else timeout,
                metadata=self._metadata)
        except grpc.RpcError as e:
            raise from_rpc_error(e, method) from None

    def _range(self, method: str, request: Any,
               timeout: Optional[float]) -> Tuple[StepRange, int]:
        """EvaluateRange or Simulate of `request`, as one StepRange and the
        revision. A long range is fetched as RANGE_CHUNK_STEPS pieces at
        once (a single 24 MB answer crosses gRPC Python at about half the
        speed of eight 3 MB ones). Pieces evaluated at different revisions
        (an update landed in between) are fetched again at the newest, so
        the range is one revision's, as a single call's would be."""
        count, start = request.count, request.start_step
        if count <= RANGE_CHUNK_STEPS:
            response = self._call(method, request, timeout)
            return (StepRange.from_proto(response.range, response.revision),
                    response.revision)
        deadline = self.timeout if timeout is None else timeout
        offsets = list(range(0, count, RANGE_CHUNK_STEPS))
        parts: Dict[int, Any] = {}
        wanted = offsets
        for _ in range(4):
            futures = []
            for off in wanted:
                piece = type(request)()
                piece.CopyFrom(request)
                piece.start_step = start + off
                piece.count = min(RANGE_CHUNK_STEPS, count - off)
                futures.append((off, getattr(self._stub, method).future(
                    piece, timeout=deadline, metadata=self._metadata)))
            try:
                for off, f in futures:
                    parts[off] = f.result()
            except grpc.RpcError as e:
                for _, f in futures:
                    f.cancel()
                raise from_rpc_error(e, method) from None
            newest = max(p.revision for p in parts.values())
            wanted = [o for o in offsets if parts[o].revision != newest]
            if not wanted:
                return StepRange.from_protos(
                    [parts[o].range for o in offsets], newest), newest
        # Updates kept landing: one call gives one revision.
        response = self._call(method, request, timeout)
        return (StepRange.from_proto(response.range, response.revision),
                response.revision)

    def close(self) -> None:
        if self._own_channel:
            self._channel.close()

    def __enter__(self) -> "Client":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    # -- resources --------------------------------------------------------

    def create(self, schedule_id: str, spec: SpecLike, *,
               display_name: str = "", labels: Optional[Mapping[str, str]] = None,
               reason: str = "", actor: Optional[str] = None,
               timeout: Optional[float] = None) -> Schedule:
        request = service_pb2.CreateScheduleRequest(
            schedule_id=schedule_id,
            schedule=resources_pb2.Schedule(spec=to_spec(spec),
                                          display_name=display_name,
                                          labels=dict(labels or {})),
            actor=self.actor if actor is None else actor, reason=reason)
        return Schedule.from_proto(self._call("CreateSchedule", request,
                                              timeout))

    def fork(self, source: str, schedule_id: str, at_step: int, *,
             spec: Optional[SpecLike] = None, display_name: str = "",
             labels: Optional[Mapping[str, str]] = None, reason: str = "",
             actor: Optional[str] = None,
             timeout: Optional[float] = None) -> Schedule:
        """A new schedule `schedule_id` serving exactly `source`'s LRs below
        `at_step` (held as served there) and then the source's timeline as
        of that step, or `spec` from `at_step` on the copied clock:
        population-based training's exploit (and explore) step. Labels
        default to the source's. The source is only read."""
        resource = resources_pb2.Schedule(display_name=display_name,
                                          labels=dict(labels or {}))
        if spec is not None:
            resource.spec.CopyFrom(to_spec(spec))
        request = service_pb2.ForkScheduleRequest(
            source=schedule_name(source), schedule_id=schedule_id,
            at_step=at_step, schedule=resource,
            actor=self.actor if actor is None else actor, reason=reason)
        return Schedule.from_proto(self._call("ForkSchedule", request,
                                              timeout))

    def get(self, schedule: str, *, timeout: Optional[float] = None) -> Schedule:
        request = service_pb2.GetScheduleRequest(name=schedule_name(schedule))
        return Schedule.from_proto(self._call("GetSchedule", request, timeout))

    def list(self, filter: str = "", *, page_size: int = 0,
             timeout: Optional[float] = None) -> Iterator[Schedule]:
        """Every schedule matching `filter`, page after page."""
        token = ""
        while True:
            response = self._call("ListSchedules",
                                  service_pb2.ListSchedulesRequest(
                                      page_size=page_size, page_token=token,
                                      filter=filter), timeout)
            for s in response.schedules:
                yield Schedule.from_proto(s)
            token = response.next_page_token
            if not token:
                return

    def update(self, schedule: str, *, spec: Optional[SpecLike] = None,
               display_name: Optional[str] = None,
               labels: Optional[Mapping[str, str]] = None,
               effective_step: Optional[int] = None, etag: str = "",
               reason: str = "", actor: Optional[str] = None,
               timeout: Optional[float] = None) -> Schedule:
        """Changes the given fields. A new spec applies from effective_step
        (default: the server's max_step_served + 1)."""
        resource = resources_pb2.Schedule(name=schedule_name(schedule), etag=etag)
        paths = []
        if spec is not None:
            resource.spec.CopyFrom(to_spec(spec))
            paths.append("spec")
        if display_name is not None:
            resource.display_name = display_name
            paths.append("display_name")
        if labels is not None:
            resource.labels.update(labels)
            paths.append("labels")
        request = service_pb2.UpdateScheduleRequest(
            schedule=resource,
            update_mask=field_mask_pb2.FieldMask(paths=paths),
            actor=self.actor if actor is None else actor, reason=reason)
        if effective_step is not None:
            request.effective_step = effective_step
        return Schedule.from_proto(self._call("UpdateSchedule", request,
                                              timeout))

    def delete(self, schedule: str, *, etag: str = "", reason: str = "",
               actor: Optional[str] = None,
               timeout: Optional[float] = None) -> None:
        """Deletes the schedule; the actor and reason go to the server's log
        and to watchers' DELETED event."""
        self._call("DeleteSchedule",
                   service_pb2.DeleteScheduleRequest(
                       name=schedule_name(schedule), etag=etag,
                       actor=self.actor if actor is None else actor,
                       reason=reason), timeout)

    def restart(self, schedule: str, *, at_step: Optional[int] = None,
                etag: str = "", reason: str = "", actor: Optional[str] = None,
                timeout: Optional[float] = None) -> Schedule:
        """A warm restart at at_step (default max_step_served + 1)."""
        request = service_pb2.RestartScheduleRequest(
            name=schedule_name(schedule), etag=etag,
            actor=self.actor if actor is None else actor, reason=reason)
        if at_step is not None:
            request.at_step = at_step
        return Schedule.from_proto(self._call("RestartSchedule", request,
                                              timeout))

    def rewind(self, schedule: str, to_step: int, *,
               spec: Optional[SpecLike] = None, etag: str = "",
               reason: str = "", actor: Optional[str] = None,
               timeout: Optional[float] = None) -> Schedule:
        """A new lineage of the schedule from `to_step`, which may have been
        served (at most max_step_served + 1): the rollback after a loss
        spike. Steps below to_step keep their LRs; `spec`, if given, runs
        from to_step as an UPDATE on the clock in force there, else the
        timeline is kept. max_step_served becomes to_step - 1, so the job
        resumed from its checkpoint before to_step is served to_step next
        and changes may start there again; jobs still on the old lineage
        are refused (StaleLineageError). The old lineage's segments stay in
        Schedule.rewinds."""
        request = service_pb2.RewindScheduleRequest(
            name=schedule_name(schedule), to_step=to_step, etag=etag,
            actor=self.actor if actor is None else actor, reason=reason)
        if spec is not None:
            request.spec.CopyFrom(to_spec(spec))
        return Schedule.from_proto(self._call("RewindSchedule", request,
                                              timeout))

    # -- steps ------------------------------------------------------------

    def evaluate(self, schedule: str, step: int, *,
                 batch_size: Optional[int] = None,
                 grad_norm_sq: Optional[float] = None,
                 num_params: Optional[int] = None,
                 lineage: Optional[int] = None,
                 timeout: Optional[float] = None) -> StepResult:
        """One step. With grad_norm_sq and num_params the result carries the
        thermostat's noise_std (when the spec has a thermostat). With
        `lineage` (Schedule.lineage) a job on a lineage a rewind ended is
        refused (StaleLineageError) instead of served."""
        request = service_pb2.EvaluateRequest(name=schedule_name(schedule),
                                              step=step)
        if batch_size is not None:
            request.batch_size = batch_size
        if grad_norm_sq is not None:
            request.grad_norm_sq = grad_norm_sq
        if num_params is not None:
            request.num_params = num_params
        if lineage is not None:
            request.lineage = lineage
        response = self._call("Evaluate", request, timeout)
        return StepResult.from_proto(response.result, response.revision)

    def evaluate_range(self, schedule: str, start_step: int, count: int, *,
                       batch_size: Optional[int] = None,
                       inspect_only: bool = False,
                       lineage: Optional[int] = None,
                       timeout: Optional[float] = None) -> StepRange:
        """Steps [start_step, start_step + count). Leave inspect_only False
        when the job will use the steps (a prefetch is serving: later updates
        then default to after the range); set it when only looking.
        `lineage` as in evaluate()."""
        request = service_pb2.EvaluateRangeRequest(
            name=schedule_name(schedule), start_step=start_step, count=count,
            inspect_only=inspect_only, raw_arrays=True, compact=True)
        if batch_size is not None:
            request.batch_size = batch_size
        if lineage is not None:
            request.lineage = lineage
        return self._range("EvaluateRange", request, timeout)[0]

    def simulate(self, spec: SpecLike, start_step: int, count: int, *,
                 batch_size: Optional[int] = None,
                 timeout: Optional[float] = None) -> StepRange:
        """EvaluateRange for a spec that is not stored."""
        request = service_pb2.SimulateRequest(spec=to_spec(spec),
                                              start_step=start_step,
                                              count=count, raw_arrays=True,
                                              compact=True)
        if batch_size is not None:
            request.batch_size = batch_size
        return self._range("Simulate", request, timeout)[0]

    def advance(self, schedule: str, *, request_id: str = "",
                expected_position: Optional[int] = None,
                lineage: Optional[int] = None,
                timeout: Optional[float] = None,
                allow_multi_rank: bool = False) -> Advanced:
        """The server-side counter + 1, and the step result there. Retry a
        failed call with the same request_id to advance exactly once.

        In a torch.distributed job of several ranks every rank's call would
        move the counter, so it raises RuntimeError there: use
        anneal.torch.advance (rank 0 advances and broadcasts the answer), or
        pass allow_multi_rank=True when only this rank advances."""
        world = _distributed_world_size()
        if world > 1 and not allow_multi_rank:
            raise RuntimeError(
                "advance: this process is one of %d torch.distributed ranks, "
                "and each rank's Advance would move %s one more step; call "
                "anneal.torch.advance(client, schedule) on every rank (rank 0 "
                "advances and broadcasts the answer), or pass "
                "allow_multi_rank=True if only this rank advances" %
                (world, schedule_name(schedule)))
        request = service_pb2.AdvanceRequest(name=schedule_name(schedule),
                                             request_id=request_id)
        if expected_position is not None:
            request.expected_position = expected_position
        if lineage is not None:
            request.lineage = lineage
        response = self._call("Advance", request, timeout)
        return Advanced(position=response.position,
                        result=StepResult.from_proto(response.result,
                                                     response.revision),
                        revision=response.revision, lineage=response.lineage)

    # -- metrics ----------------------------------------------------------

    def watch(self, schedules: Sequence[str] = (), *, filter: str = "",
              since_revisions: Optional[Mapping[str, int]] = None,
              include_reports: bool = False) -> Watch:
        """Streams what happens to `schedules` (or to every schedule
        `filter` matches): CURRENT for each (unless since_revisions says you
        have its revision), SYNCED, then CREATED, UPDATED, RESTARTED,
        DELETED, CYCLE (and REPORTED with include_reports) as they become
        durable. No deadline: it runs until cancelled or the server ends it
        (docs/api.md, Watch)."""
        since = {schedule_name(k): int(v)
                 for k, v in (since_revisions or {}).items()}
        request = service_pb2.WatchSchedulesRequest(
            names=[schedule_name(s) for s in schedules], filter=filter,
            since_revisions=since, include_reports=include_reports)
        return Watch(self._stub.WatchSchedules(request,
                                               metadata=self._metadata), since)

    def report(self, schedule: str, step: int, metrics: Mapping[str, Any], *,
               lineage: Optional[int] = None,
               timeout: Optional[float] = None) -> MetricReport:
        """Records `metrics` (name -> number) at `step`; durable once it
        returns. Reports at one step merge (a metric reported again takes
        the new value), so retrying a failed call is safe. Values may be
        anything float() takes (a 0-d tensor, a numpy scalar); NaN and
        infinities are kept. The result holds this call's metrics."""
        request = service_pb2.ReportMetricsRequest(
            name=schedule_name(schedule), step=step,
            metrics={str(k): float(v) for k, v in metrics.items()},
            lineage=lineage)
        return MetricReport.from_proto(self._call("ReportMetrics", request,
                                                  timeout))

    def report_future(self, schedule: str, step: int,
                      metrics: Mapping[str, float], *,
                      lineage: Optional[int] = None,
                      timeout: Optional[float] = None) -> "ReportFuture":
        """report() without waiting: the call is in flight when this returns;
        ReportFuture.result() waits for it (anneal.reporter keeps several in
        flight so that the server can commit them together)."""
        request = service_pb2.ReportMetricsRequest(
            name=schedule_name(schedule), step=step,
            metrics={str(k): float(v) for k, v in metrics.items()},
            lineage=lineage)
        return ReportFuture(self._stub.ReportMetrics.future(
            request, timeout=self.timeout if timeout is None else timeout,
            metadata=self._metadata))

    def list_reports(self, schedule: str, *, start_step: Optional[int] = None,
                     end_step: Optional[int] = None,
                     metrics: Sequence[str] = (), page_size: int = 0,
                     timeout: Optional[float] = None
                     ) -> Iterator[MetricReport]:
        """The kept reports with start_step <= step < end_step, in step
        order, page after page; with `metrics`, only those metrics (and only
        the steps that have one of them)."""
        if isinstance(metrics, str):
            raise TypeError("metrics: must be a sequence of metric names, got "
                            "the string %r (write [%r])" % (metrics, metrics))
        token = ""
        while True:
            request = service_pb2.ListMetricReportsRequest(
                name=schedule_name(schedule), page_size=page_size,
                page_token=token, metric_names=list(metrics))
            if start_step is not None:
                request.start_step = start_step
            if end_step is not None:
                request.end_step = end_step
            response = self._call("ListMetricReports", request, timeout)
            for r in response.reports:
                yield MetricReport.from_proto(r)
            token = response.next_page_token
            if not token:
                return

    def diagnose(self, schedule: str, *, validation_metric: str = "",
                 training_metric: str = "",
                 timeout: Optional[float] = None
                 ) -> service_pb2.DiagnoseResponse:
        """Diagnose's findings about the schedule and its job's reports
        (docs/adaptive.md), most severe first: each has `code`, `severity`,
        `summary`, `evidence`, `spans`, `statistic` and `recommendation`.
        Empty metric names: the defaults (val_loss, ...; loss, ...)."""
        request = service_pb2.DiagnoseRequest(
            name=schedule_name(schedule), validation_metric=validation_metric,
            training_metric=training_metric)
        return self._call("Diagnose", request, timeout)


class Watch:
    """A WatchSchedules stream (Client.watch): iterate it for
    anneal.v1.WatchEvent messages. `revisions` holds the last revision seen
    per schedule, so that a new watch resumes exactly where this one ended:

        w = client.watch(filter='labels.team = "vision"')
        for event in w: ...
        # after a break (UnavailableError, ResourceExhaustedError):
        w = client.watch(filter=..., since_revisions=w.revisions)

    cancel() ends it from another thread."""

    def __init__(self, call: Any, since: Mapping[str, int]) -> None:
        self._call = call
        self.revisions: dict = dict(since)

    def __iter__(self) -> "Watch":
        return self

    def __next__(self) -> Any:
        try:
            event = next(self._call)
        except grpc.RpcError as e:
            if e.code() == grpc.StatusCode.CANCELLED:
                raise StopIteration from None
            raise from_rpc_error(e, "WatchSchedules") from None
        kind = service_pb2.WatchEvent.Kind.Name(event.kind)
        if kind == "DELETED":
            self.revisions.pop(event.name, None)
        elif event.revision and kind not in ("CYCLE", "REPORTED"):
            self.revisions[event.name] = event.revision
        return event

    def cancel(self) -> None:
        self._call.cancel()


class ReportFuture:
    """A ReportMetrics call in flight (Client.report_future)."""

    def __init__(self, future: Any) -> None:
        self._future = future

    def add_done_callback(self, fn: Any) -> None:
        """Calls fn(self) once the call has ended (on a gRPC thread, or at
        once if it already has)."""
        self._future.add_done_callback(lambda _: fn(self))

    def result(self) -> MetricReport:
        """Waits for the call; raises the AnnealError it failed with."""
        try:
            return MetricReport.from_proto(self._future.result())
        except grpc.RpcError as e:
            raise from_rpc_error(e, "ReportMetrics") from None
