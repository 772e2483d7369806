"""anneal.reporter.MetricReporter: metric reports sent in the background.

A training step must never wait for the server, and reporting a loss is no
exception: report() only checks, queues and returns. A daemon thread sends
what is queued with ReportMetrics, up to `max_in_flight` calls at a time
(the server commits concurrent reports together, one fsync for all of them).

* Reports for one step that are still queued merge into one (a metric
  reported again takes the new value, as on the server), and no two calls
  for one step are ever in flight together, so the server sees them in the
  order they were made.
* Metric names and counts are checked in report() (ValueError), so a bad
  name fails at the call that made it, not seconds later on the sender
  thread, and never takes the valid metrics of its step down with it.
* While the server is unreachable, sends are retried with backoff, a single
  AnnealOutageWarning is issued per outage, and reports wait in the queue.
  The queue holds at most `max_pending` steps; beyond that the oldest
  (first reported) step is dropped, counted in `dropped`, warned once.
* A report the server still refuses (the schedule deleted, more than 64
  metrics at the step counting those it already has) is dropped with a
  warning carrying the server's message, once per distinct message, and
  counted in `rejected`.
* flush() waits until everything queued so far is sent or dropped. close()
  flushes (bounded by its timeout), waits for the calls in flight, and stops
  the thread; what is still unsent then is counted in `dropped`.
"""

from __future__ import annotations

import heapq
import logging
import re
import threading
import time
import warnings
from typing import Any, Dict, List, Mapping, Optional, Set, Tuple

import grpc

from anneal.client import Client, schedule_name
from anneal.errors import AnnealError
from anneal.window import AnnealOutageWarning, Backoff

log = logging.getLogger("anneal")

# The server's rule for metric names and counts (anneal.v1.MetricReport in
# proto/anneal/v1/service.proto; enforced by anneal/server/registry/registry_reports.cc, which
# stays the authority). Checked here too because a refusal found on the
# sender thread could only be a warning, long after the call that caused it.
METRIC_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_./-]{0,63}\Z")
MAX_METRICS_PER_STEP = 64


def check_metrics(step: int, metrics: Mapping[str, float]) -> None:
    """Raises ValueError, naming the field and the rule as the server does,
    if `metrics` could not be reported at `step`."""
    if step < 0:
        raise ValueError("step: must be >= 0, got %d" % step)
    for name in metrics:
        if not METRIC_NAME.match(name):
            raise ValueError('metrics["%s"]: must match '
                             '^[A-Za-z_][A-Za-z0-9_./-]{0,63}$, got "%s"' %
                             (name, name))
    if len(metrics) > MAX_METRICS_PER_STEP:
        raise ValueError("metrics: must leave step %d with at most %d metrics "
                         "(merged with those reported before), got %d" %
                         (step, MAX_METRICS_PER_STEP, len(metrics)))


def _as_error(e: Exception) -> AnnealError:
    return e if isinstance(e, AnnealError) else AnnealError(
        grpc.StatusCode.UNKNOWN, "%s: %s" % (type(e).__name__, e),
        "ReportMetrics")


class MetricReporter:
    """Queues metric reports for `schedule` and sends them in the background.

    Args:
      client: the anneal.Client to send with.
      schedule: the schedule id or name.
      max_pending: the most steps waiting to be sent (oldest dropped beyond).
      max_in_flight: the most ReportMetrics calls in flight at once.
      rpc_timeout: the deadline of every call, in seconds.
      backoff: retry delays while the server is unreachable.
    """

    def __init__(self, client: Client, schedule: str, *,
                 max_pending: int = 10_000, max_in_flight: int = 16,
                 rpc_timeout: float = 5.0, backoff: Backoff = Backoff()
                 ) -> None:
        if max_pending < 1 or max_in_flight < 1:
            raise ValueError("max_pending and max_in_flight must be >= 1, "
                             "got %d and %d" % (max_pending, max_in_flight))
        self.client = client
        self.schedule = schedule_name(schedule)
        self.max_pending = max_pending
        self.max_in_flight = max_in_flight
        self.rpc_timeout = rpc_timeout
        self.backoff = backoff
        # The lineage the reports are for (AnnealLR sets it): a report of a
        # lineage a rewind ended is refused, not merged into the new one's.
        self.lineage: Optional[int] = None
        # Counters (read them any time): calls the server acknowledged,
        # steps dropped (for space, or unsent at close), calls refused, and
        # reports AnnealLR left to global rank 0 (its report_from).
        self.sent = 0
        self.dropped = 0
        self.rejected = 0
        self.skipped_other_rank = 0
        self._cv = threading.Condition()
        # step -> [seq, metrics] waiting to be sent. seq numbers the reports
        # in the order they were made; _order is a heap of (seq, step) over
        # it, with stale pairs (step gone, or its seq changed) skipped, so
        # the oldest is found in O(log n) even after a failed send goes back.
        self._queue: Dict[int, List[Any]] = {}
        self._order: List[Tuple[int, int]] = []
        self._seq = 0
        self._in_flight = 0
        self._sending: Set[int] = set()  # steps with a call in flight
        self._resume_at = 0.0  # monotonic time: no new call before it
        self._attempt = 0  # failed attempts in a row, for the backoff
        self._closed = False  # close() was called
        self._closing = False  # the sender stops; failures are not retried
        self._outage = False
        self._unsent_at_close = 0
        self._warned_drop = False
        self._warned: Set[str] = set()
        self._thread: Optional[threading.Thread] = None

    def report(self, step: int, metrics: Mapping[str, Any]) -> None:
        """Queues `metrics` (name -> anything float() takes) at `step` and
        returns at once. A value float() cannot convert, a bad name, or more
        than 64 metrics at the step raise here."""
        step = int(step)
        values = {str(k): float(v) for k, v in metrics.items()}
        check_metrics(step, values)
        if not values:
            return
        with self._cv:
            if self._closed:
                raise RuntimeError("MetricReporter for %s is closed" %
                                   self.schedule)
            queued = self._queue.get(step)
            if queued is not None:
                merged = dict(queued[1], **values)
                check_metrics(step, merged)
                queued[1] = merged
            else:
                self._seq += 1
                self._push(step, self._seq, values)
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._run, name="anneal-reporter", daemon=True)
                self._thread.start()
            self._cv.notify_all()

    @property
    def pending(self) -> int:
        """Steps waiting to be sent, plus calls in flight."""
        with self._cv:
            return len(self._queue) + self._in_flight

    def flush(self, timeout: Optional[float] = None) -> bool:
        """Waits until every report queued so far is sent or dropped; False
        if `timeout` (seconds) ran out first."""
        with self._cv:
            return self._cv.wait_for(
                lambda: not self._queue and self._in_flight == 0, timeout)

    def close(self, timeout: float = 5.0) -> None:
        """Sends what is queued (for at most `timeout` seconds), waits for
        the calls in flight, and stops. What is still unsent then is counted
        in `dropped`, with a warning. A second call does nothing."""
        with self._cv:
            if self._closed:
                return
            self._closed = True
        self.flush(timeout)
        with self._cv:
            self._closing = True
            self._unsent_at_close += len(self._queue)
            self.dropped += len(self._queue)
            self._queue.clear()
            self._order.clear()
            self._cv.notify_all()
            # The calls in flight end within their deadline; after that the
            # client may be closed under them.
            self._cv.wait_for(lambda: self._in_flight == 0,
                              self.rpc_timeout + 1.0)
            unsent = self._unsent_at_close + self._in_flight
            thread = self._thread
        if thread is not None:
            thread.join(timeout=1.0)
        if unsent:
            warnings.warn("anneal: %d metric report(s) for %s were not sent "
                          "before close()" % (unsent, self.schedule),
                          AnnealOutageWarning, stacklevel=2)

    # -- the queue (under _cv) --------------------------------------------

    def _push(self, step: int, seq: int, values: Dict[str, float]) -> None:
        self._queue[step] = [seq, values]
        heapq.heappush(self._order, (seq, step))
        while len(self._queue) > self.max_pending:
            oldest = self._pop_oldest(lambda s: True)
            del self._queue[oldest]
            self.dropped += 1
            if not self._warned_drop:
                self._warned_drop = True
                warnings.warn(
                    "anneal: more than %d steps of metric reports for %s are "
                    "waiting to be sent; the oldest are dropped (see "
                    "MetricReporter.dropped)" % (self.max_pending,
                                                 self.schedule),
                    AnnealOutageWarning, stacklevel=4)

    def _pop_oldest(self, eligible: Any) -> int:
        """The step of the oldest queued report that is eligible(step),
        taken off the heap (it must exist)."""
        skipped = []
        try:
            while True:
                seq, step = heapq.heappop(self._order)
                entry = self._queue.get(step)
                if entry is None or entry[0] != seq:
                    continue  # stale
                if eligible(step):
                    return step
                skipped.append((seq, step))
        finally:
            for pair in skipped:
                heapq.heappush(self._order, pair)

    def _put_back(self, step: int, seq: int,
                  values: Dict[str, float]) -> None:
        """A failed send goes back to its place in reporting order; values
        reported for its step since override it."""
        queued = self._queue.get(step)
        if queued is None:
            self._push(step, seq, values)
            return
        queued[1] = dict(values, **queued[1])
        if seq < queued[0]:
            queued[0] = seq
            heapq.heappush(self._order, (seq, step))

    def _sendable(self) -> bool:
        return len(self._queue) > sum(1 for s in self._sending
                                      if s in self._queue)

    # -- the sender thread ------------------------------------------------

    def _next(self) -> Optional[Tuple[int, int, Dict[str, float]]]:
        """Waits for a report that may be sent now: a free call slot, no
        backoff pending, and its step not in flight. None once closing."""
        with self._cv:
            while True:
                if self._closing:
                    return None
                now = time.monotonic()  # one reading for test and wait
                if (self._in_flight < self.max_in_flight and
                        now >= self._resume_at and self._sendable()):
                    break
                self._cv.wait(timeout=self._resume_at - now
                              if self._resume_at > now else None)
            step = self._pop_oldest(lambda s: s not in self._sending)
            seq, values = self._queue.pop(step)
            self._sending.add(step)
            self._in_flight += 1
            return step, seq, values

    def _run(self) -> None:
        # Calls overlap (up to max_in_flight) rather than go in rounds, so
        # one slow commit does not idle the other slots.
        while True:
            item = self._next()
            if item is None:
                return
            step, seq, values = item
            try:
                future = self.client.report_future(self.schedule, step, values,
                                                   lineage=self.lineage,
                                                   timeout=self.rpc_timeout)
            except Exception as e:  # pylint: disable=broad-except
                self._done(step, seq, values, _as_error(e))
                continue
            try:
                # May run _finish at once, on this thread, if the call has
                # already ended; the call is completed there either way.
                future.add_done_callback(
                    lambda f, item=item: self._finish(f, *item))
            except Exception:  # pylint: disable=broad-except
                log.exception("anneal: %s: a metric report callback failed",
                              self.schedule)

    def _finish(self, future: Any, step: int, seq: int,
                values: Dict[str, float]) -> None:
        error = None
        try:
            future.result()
        except Exception as e:  # pylint: disable=broad-except
            error = _as_error(e)
        self._done(step, seq, values, error)

    def _done(self, step: int, seq: int, values: Dict[str, float],
              error: Optional[AnnealError]) -> None:
        """A call ended (on a gRPC thread, or the sender's): exactly once
        per call."""
        retry = started = recovered = False
        with self._cv:
            self._sending.discard(step)
            self._in_flight -= 1
            if error is None:
                self.sent += 1
                recovered, self._outage, self._attempt = self._outage, False, 0
            elif self._closing:
                self._unsent_at_close += 1
                self.dropped += 1
            elif error.retryable:
                retry = True
                self._put_back(step, seq, values)
                now = time.monotonic()
                # The other calls of a failed round fail too: only the
                # first failure after a wait counts as an attempt.
                if now >= self._resume_at:
                    self._resume_at = now + self.backoff.delay(self._attempt)
                    self._attempt += 1
                started, self._outage = not self._outage, True
            else:
                self.rejected += 1
            self._cv.notify_all()
        # Outside the lock, and never raising into gRPC or the sender (a
        # warnings filter may turn these into exceptions).
        try:
            if recovered:
                log.info("anneal: %s: metric reports are being sent again",
                         self.schedule)
            elif started:
                warnings.warn("anneal: cannot send metric reports for %s "
                              "(%s); they are queued and retried" %
                              (self.schedule, error), AnnealOutageWarning,
                              stacklevel=2)
            elif (error is not None and not retry and not self._closing and
                  error.message not in self._warned):
                self._warned.add(error.message)
                warnings.warn("anneal: the server refused the metric report "
                              "of %s at step %d: %s" % (self.schedule, step,
                                                        error),
                              RuntimeWarning, stacklevel=2)
        except Exception:  # pylint: disable=broad-except
            log.exception("anneal: %s: reporting the state of metric "
                          "reports failed", self.schedule)
