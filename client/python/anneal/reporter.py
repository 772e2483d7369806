"""anneal.reporter.MetricReporter: metric reports sent in the background.

A training step must never wait for the server, and reporting a loss is no
exception: report() only queues and returns. A daemon thread sends what is
queued with ReportMetrics, up to `max_in_flight` calls at a time (the
server commits concurrent reports together, one fsync for all of them).

* Reports for one step that are still queued merge into one (a metric
  reported again takes the new value, as on the server), and no two calls
  for one step are ever in flight together, so the server sees them in the
  order they were made.
* While the server is unreachable, sends are retried with backoff, a single
  AnnealOutageWarning is issued per outage, and reports wait in the queue.
  The queue holds at most `max_pending` steps; beyond that the oldest step
  is dropped (counted in `dropped`, warned once).
* A report the server refuses (a bad metric name, more than 64 metrics at a
  step, the schedule deleted) is dropped with a warning carrying the
  server's message, once per distinct message, and counted in `rejected`.
* flush() waits until everything queued so far is sent or dropped; close()
  flushes (bounded by its timeout) and stops the thread.
"""

from __future__ import annotations

import collections
import logging
import threading
import time
import warnings
from typing import Any, Dict, List, Mapping, Optional, Set, Tuple

import grpc

from anneal.client import Client, schedule_name
from anneal.errors import AnnealError
from anneal.window import AnnealOutageWarning, Backoff

log = logging.getLogger("anneal")


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
        # Counters (read them any time): reports the server acknowledged,
        # steps dropped for space, reports the server refused.
        self.sent = 0
        self.dropped = 0
        self.rejected = 0
        self._cv = threading.Condition()
        # step -> [seq, metrics] waiting to be sent, in reporting order (seq
        # numbers the reports; a failed send goes back to its place).
        self._queue: "collections.OrderedDict[int, List[Any]]" = (
            collections.OrderedDict())
        self._seq = 0
        self._in_flight = 0
        self._sending: Set[int] = set()  # steps with a call in flight
        self._resume_at = 0.0  # monotonic time: no new call before it
        self._attempt = 0  # failed attempts in a row, for the backoff
        self._closing = False
        self._outage = False
        self._warned_drop = False
        self._warned: Set[str] = set()
        self._thread: Optional[threading.Thread] = None

    def report(self, step: int, metrics: Mapping[str, Any]) -> None:
        """Queues `metrics` (name -> anything float() takes) at `step`.
        Returns at once; a value float() cannot convert raises here."""
        values = {str(k): float(v) for k, v in metrics.items()}
        if not values:
            return
        with self._cv:
            if self._closing:
                raise RuntimeError("MetricReporter for %s is closed" %
                                   self.schedule)
            self._enqueue(int(step), values)
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._run, name="anneal-reporter", daemon=True)
                self._thread.start()
            self._cv.notify_all()

    @property
    def pending(self) -> int:
        """Steps queued or in flight."""
        with self._cv:
            return len(self._queue) + self._in_flight

    def flush(self, timeout: Optional[float] = None) -> bool:
        """Waits until every report queued so far is sent or dropped; False
        if `timeout` (seconds) ran out first."""
        with self._cv:
            return self._cv.wait_for(
                lambda: not self._queue and self._in_flight == 0, timeout)

    def close(self, timeout: float = 5.0) -> None:
        """Sends what is queued (for at most `timeout` seconds), then stops.
        Reports still unsent then are dropped with a warning."""
        flushed = self.flush(timeout)
        with self._cv:
            self._closing = True
            left = len(self._queue) + self._in_flight
            self._cv.notify_all()
            thread = self._thread
        if thread is not None:
            thread.join(timeout=self.rpc_timeout + 1.0)
        if not flushed and left:
            warnings.warn("anneal: %d metric report(s) for %s were not sent "
                          "before close()" % (left, self.schedule),
                          AnnealOutageWarning, stacklevel=2)

    # -- the sender thread ------------------------------------------------

    def _enqueue(self, step: int, values: Dict[str, float],
                 seq: Optional[int] = None) -> None:
        """Queues `values` at `step`. With seq None they are a new report,
        merged into the step's queued one if there is one (newest values
        win). Otherwise they are a failed send put back: into the order of
        reporting, at its `seq`, with values queued since for its step
        overriding it."""
        queued = self._queue.get(step)
        if queued is not None:
            if seq is None:
                queued[1].update(values)
            else:
                queued[1] = dict(values, **queued[1])
            return
        if seq is None:
            self._seq += 1
            self._queue[step] = [self._seq, values]
        else:
            self._queue[step] = [seq, values]
            # Back in reporting order, so that overflow drops the oldest.
            for later in [k for k, e in self._queue.items() if e[0] > seq]:
                self._queue.move_to_end(later)
        while len(self._queue) > self.max_pending:
            self._queue.popitem(last=False)
            self.dropped += 1
            if not self._warned_drop:
                self._warned_drop = True
                warnings.warn(
                    "anneal: more than %d steps of metric reports for %s are "
                    "waiting to be sent; the oldest are dropped (see "
                    "MetricReporter.dropped)" % (self.max_pending,
                                                 self.schedule),
                    AnnealOutageWarning, stacklevel=4)

    def _next(self) -> Optional[Tuple[int, int, Dict[str, float]]]:
        """Waits for a report that may be sent now: a free call slot, no
        backoff pending, and its step not in flight. None once closing."""
        def ready() -> bool:
            return self._closing or (
                self._in_flight < self.max_in_flight and
                time.monotonic() >= self._resume_at and
                any(step not in self._sending for step in self._queue))
        with self._cv:
            while not ready():
                wait = self._resume_at - time.monotonic()
                self._cv.wait(timeout=wait if wait > 0 else None)
            if self._closing:
                return None
            step = next(x for x in self._queue if x not in self._sending)
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
                                                   timeout=self.rpc_timeout)
                future.add_done_callback(
                    lambda f, item=item: self._finish(f, *item))
            except AnnealError as e:
                self._done(step, seq, values, e)
            except Exception as e:  # pylint: disable=broad-except
                # Whatever it is, the thread must live on: refuse the report.
                self._done(step, seq, values, AnnealError(
                    grpc.StatusCode.UNKNOWN, str(e), "ReportMetrics"))

    def _finish(self, future: Any, step: int, seq: int,
                values: Dict[str, float]) -> None:
        try:
            future.result()
            self._done(step, seq, values, None)
        except AnnealError as e:
            self._done(step, seq, values, e)

    def _done(self, step: int, seq: int, values: Dict[str, float],
              error: Optional[AnnealError]) -> None:
        """A call ended (on a gRPC thread, or the sender's)."""
        retry = error is not None and error.retryable
        with self._cv:
            self._sending.discard(step)
            self._in_flight -= 1
            if error is None:
                self.sent += 1
                recovered, self._outage, self._attempt = self._outage, False, 0
            elif retry:
                self._enqueue(step, values, seq)
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
        if error is None:
            if recovered:
                log.info("anneal: %s: metric reports are being sent again",
                         self.schedule)
        elif retry:
            if started:
                warnings.warn("anneal: cannot send metric reports for %s "
                              "(%s); they are queued and retried" %
                              (self.schedule, error), AnnealOutageWarning,
                              stacklevel=2)
        else:
            self._reject(step, error)

    def _reject(self, step: int, e: AnnealError) -> None:
        if e.message in self._warned:
            return
        self._warned.add(e.message)
        warnings.warn("anneal: the server refused the metric report of %s at "
                      "step %d: %s" % (self.schedule, step, e),
                      RuntimeWarning, stacklevel=2)
