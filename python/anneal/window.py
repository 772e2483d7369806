"""The prefetch window: served steps kept ahead of a training job.

Why a window works: a schedule is a pure function of the step and its
timeline, and the server never rewrites a step it has served
(docs/api.md). A prefetch with EvaluateRange(inspect_only=False) *is*
serving: it raises max_step_served to the window's end, so any later change
takes effect after the window. A cached window can therefore never go stale,
and the job may use it without asking again.

The protocol, for a window of W steps refreshed after R of them:

* the job asks for step t; while t is inside the current range nothing
  happens but a list lookup (the caller does that; this class is only
  consulted once t reaches the refresh point);
* from the refresh point on, a background thread fetches [t, t + W) and the
  new range replaces the old one at the next step that finds it ready;
* so the server's max_step_served is always < t_job + W, and a change made
  while the job is at step t applies from a step <= t + W, exactly at its
  effective step (the bound documented in docs/python-client.md).

Outages: failed fetches are retried with exponential backoff, a warning is
issued once per outage, and the job keeps stepping on the window. Only when
the window runs out does it block (a logged message, optional timeout), or,
with a fallback configured, evaluate locally until the server answers again.
When it does, the steps that were applied offline are checked against what
the server now says, and a mismatch is reported.
"""

from __future__ import annotations

import logging
import threading
import time
import warnings
from dataclasses import dataclass
from typing import Callable, List, Optional, Tuple

from anneal.errors import (AnnealError, ServerUnreachableError,
                           StaleLineageError)
from anneal.results import StepRange

log = logging.getLogger("anneal")

Fetch = Callable[[int, int], StepRange]

# Offline steps longer than this are not re-fetched for the check on recovery.
MAX_VERIFY_STEPS = 200_000


class AnnealOutageWarning(RuntimeWarning):
    """The anneal server is unreachable; training goes on with prefetched
    (or locally evaluated) steps."""


class AnnealMismatchWarning(RuntimeWarning):
    """Steps this job already applied differ from what the server now says
    they are (offline steps after a change made while offline, or a served
    step rewritten by the server). `Prefetcher.mismatches` lists them."""


@dataclass(frozen=True)
class Backoff:
    """Retry delays: initial, then * multiplier, capped at maximum (seconds)."""

    initial: float = 0.05
    maximum: float = 2.0
    multiplier: float = 2.0

    def delay(self, attempt: int) -> float:
        # The exponent is capped: an outage can last many thousand attempts
        # and 2.0 ** 1024 overflows.
        return min(self.maximum,
                   self.initial * self.multiplier ** min(attempt, 60))


class Prefetcher:
    """Keeps a StepRange covering the job's step, fetched in the background.

    fetch(start, count) returns steps [start, start+count) from the server.
    fallback(start, count), if given, evaluates them locally.
    synchronous=True makes every miss a blocking call on the caller's thread
    (the RPC-per-step mode): no thread, no window.
    """

    def __init__(self, fetch: Fetch, *, window: int, refresh_after: int,
                 backoff: Backoff = Backoff(),
                 block_timeout: Optional[float] = None,
                 fallback: Optional[Fetch] = None,
                 on_fetched: Optional[Callable[[StepRange], None]] = None,
                 synchronous: bool = False, describe: str = "anneal") -> None:
        if window < 1:
            raise ValueError("window must be >= 1, got %d" % window)
        if not 0 <= refresh_after < window:
            raise ValueError("refresh_after must be in [0, window), got %d" %
                             refresh_after)
        self.window = window
        self.refresh_after = refresh_after
        self.backoff = backoff
        self.block_timeout = block_timeout
        self.fallback = fallback
        self.synchronous = synchronous
        self.describe = describe
        self._fetch = fetch
        self._on_fetched = on_fetched
        self._cond = threading.Condition()
        self._want: Optional[int] = None    # the step a fetch should start at
        self._ready: Optional[StepRange] = None  # fetched, not yet taken
        self._failing = False               # the last attempt failed
        self._last_error: Optional[BaseException] = None
        self._fatal: Optional[BaseException] = None
        self._warned = False
        self._closed = False
        self._thread: Optional[threading.Thread] = None
        # Set by refresh_soon(): the next ensure() fetches, wherever it is,
        # and the caller consults ensure() every step until that range is in
        # (awaiting_refresh).
        self._refresh_soon = False
        self._urgent = False
        # Steps applied from local ranges while the server was unreachable.
        self._offline: List[StepRange] = []
        # The synchronous mode's retry schedule during an outage.
        self._sync_attempt = 0
        self._sync_retry_at = 0.0
        # Counters (read by tests, the benchmark and logs).
        self.fetches = 0
        self.failures = 0
        self.local_ranges = 0
        self.worker_cpu_seconds = 0.0
        self.mismatches: List[Tuple[int, float, float]] = []

    # -- consumer side (the training thread) --------------------------------

    def refresh_point(self, r: StepRange) -> int:
        """The first step at which the caller must consult ensure() again."""
        if r.source != "server" or self.synchronous:
            return r.start_step  # every step: look for the server's answer
        return r.end_step - (self.window - self.refresh_after)

    def ensure(self, t: int, current: Optional[StepRange]) -> StepRange:
        """A range covering step t; `current` is the one in use."""
        if self._ready is not None:
            with self._cond:
                ready, self._ready = self._ready, None
            if ready is not None and ready.covers(t):
                current = self._swap_in(ready, t, current)
                self._urgent = False
        if self._failing and not self._warned:
            self._warn_outage(t, current)
        if isinstance(self._fatal, StaleLineageError):
            # A rewind ended this job's lineage: stop now, not a window
            # later (the steps left are the old lineage's).
            with self._cond:
                error, self._fatal = self._fatal, None
            if error is not None:
                raise error
        if current is not None and current.covers(t):
            if ((t >= self.refresh_point(current) or self._refresh_soon) and
                    not self.synchronous):
                if self._refresh_soon:
                    self._refresh_soon, self._urgent = False, True
                self._request(t)
            return current
        return self._miss(t, current)

    @property
    def awaiting_refresh(self) -> bool:
        """A refresh_soon() fetch is in flight or ready: consult ensure() at
        every step until it is swapped in."""
        return self._urgent or self._refresh_soon

    def refresh_soon(self) -> None:
        """Makes the next ensure() start a refresh (the schedule changed);
        from any thread. The caller must also consult ensure() at its next
        step."""
        self._refresh_soon = True

    def discard(self) -> None:
        """Drops a fetched range not yet taken (it may be of a lineage the
        caller left: AnnealLR.load_state_dict)."""
        with self._cond:
            self._ready = None
            if isinstance(self._fatal, StaleLineageError):
                self._fatal = None

    def close(self) -> None:
        with self._cond:
            self._closed = True
            self._cond.notify_all()
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout=5)

    @property
    def outage(self) -> bool:
        return self._failing

    def _request(self, t: int) -> None:
        """Asks the worker for [t, t + window). Always under the lock: a
        request stored without a notify could be lost while the worker
        sleeps (it only runs while a refresh is pending, so this is rare)."""
        with self._cond:
            self._want = t
            self._cond.notify()
        if self._thread is None:
            self._thread = threading.Thread(
                target=self._worker, name="anneal-prefetch", daemon=True)
            self._thread.start()

    def settle(self, timeout: float = 10.0) -> bool:
        """Waits until no fetch is pending (for tests and benchmarks);
        False on timeout."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while self._want is not None:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._cond.wait(left)
        return True

    def _swap_in(self, ready: StepRange, t: int,
                 current: Optional[StepRange] = None) -> StepRange:
        if ready.source == "server":
            if self._offline:
                self._verify_offline(ready, t)
            if (current is not None and current.source == "server" and
                    ready.revision != current.revision):
                self._verify_overlap(current, ready, t)
        return ready

    def _verify_overlap(self, old: StepRange, new: StepRange, t: int) -> None:
        """A new revision must agree with the old one on every step that was
        served before it (the server never rewrites served steps). Steps
        before t were applied already: a difference there is reported. Steps
        from t on are taken from the new range anyway."""
        lo, hi = max(old.start_step, new.start_step), min(old.end_step,
                                                          new.end_step, t)
        bad = [(s, old.lr[s - old.start_step], new.lr[s - new.start_step])
               for s in range(lo, hi)
               if old.lr[s - old.start_step] != new.lr[s - new.start_step]]
        if bad:
            self.mismatches.extend(bad)
            warnings.warn(
                "%s: revision %s rewrote %d step(s) this job had been served "
                "and had already applied (first: step %d, applied lr %r, now "
                "%r). The server should never do that; see "
                "docs/python-client.md" % (
                    self.describe, new.revision, len(bad), bad[0][0],
                    bad[0][1], bad[0][2]), AnnealMismatchWarning, stacklevel=5)

    def _verify_offline(self, server: StepRange, t: int) -> None:
        """Compares steps applied offline (before t) with the server's."""
        offline, self._offline = self._offline, []
        bad = []
        for r in offline:
            for step in range(max(r.start_step, server.start_step),
                              min(r.end_step, server.end_step, t)):
                a = r.lr[step - r.start_step]
                b = server.lr[step - server.start_step]
                if a != b:
                    bad.append((step, a, b))
        if bad:
            self.mismatches.extend(bad)
            warnings.warn(
                "%s: %d step(s) applied with the local fallback while the "
                "server was unreachable differ from what the server now "
                "serves (first: step %d, local lr %r, server lr %r); the "
                "schedule was changed while this job was offline" % (
                    self.describe, len(bad), bad[0][0], bad[0][1], bad[0][2]),
                AnnealMismatchWarning, stacklevel=4)

    def _warn_outage(self, t: int, current: Optional[StepRange]) -> None:
        self._warned = True
        left = (current.end_step - t) if current is not None else 0
        warnings.warn(
            "%s: the server is unreachable (%s); training continues on the "
            "prefetched window (%d steps left) while retrying with backoff" % (
                self.describe, self._last_error, max(0, left)),
            AnnealOutageWarning, stacklevel=4)

    def _miss(self, t: int, current: Optional[StepRange]) -> StepRange:
        """t is beyond every range we have: fetch it, or wait, or fall back."""
        if self.synchronous:
            return self._fetch_blocking(t)
        self._request(t)
        start = time.monotonic()
        deadline = (None if self.block_timeout is None
                    else start + self.block_timeout)
        announced: Optional[float] = None
        ready: Optional[StepRange] = None
        with self._cond:
            while True:
                ready, self._ready = self._ready, None
                if ready is not None and ready.covers(t):
                    break
                ready = None
                if self._fatal is not None:
                    error, self._fatal = self._fatal, None  # raised once
                    raise error
                if self._failing and self.fallback is not None:
                    break
                if self._want is None:  # the last fetch did not cover t
                    self._want = t
                    self._cond.notify_all()
                now = time.monotonic()
                if self._failing:
                    if not self._warned:
                        self._warn_outage(t, None)
                    if announced is None:
                        announced = now
                        log.warning(
                            "%s: step %d is past the prefetched window and "
                            "the server is unreachable (%s); training is "
                            "blocked until it answers%s", self.describe, t,
                            self._last_error, "" if deadline is None else
                            " (at most %g s)" % self.block_timeout)
                    elif now - announced > 30:
                        announced = now
                        log.warning("%s: still blocked at step %d after "
                                    "%.0f s: %s", self.describe, t,
                                    now - start, self._last_error)
                    if deadline is not None and now > deadline:
                        raise ServerUnreachableError(
                            "%s: step %d is past the prefetched window and "
                            "the server has been unreachable for %.1f s "
                            "(block_timeout): %s" % (
                                self.describe, t, now - start,
                                self._last_error))
                self._cond.wait(0.25)
        if ready is None:
            return self._local(t)
        if announced is not None:
            log.warning("%s: the server answers again; step %d goes on after "
                        "%.1f s blocked", self.describe, t,
                        time.monotonic() - start)
        return self._swap_in(ready, t, current)

    def _local(self, t: int) -> StepRange:
        assert self.fallback is not None
        r = self.fallback(t, self.window)
        self.local_ranges += 1
        self._offline.append(r)
        if self.local_ranges == 1 or len(self._offline) == 1:
            log.warning("%s: evaluating steps %d..%d locally (the server is "
                        "unreachable: %s)", self.describe, r.start_step,
                        r.end_step - 1, self._last_error)
        self._request(t)
        return r

    def _fetch_blocking(self, t: int) -> StepRange:
        """The synchronous mode: one call per step, retried until it works.
        With a fallback, an outage costs one attempt per backoff delay, not
        one per step (a hung server would cost rpc_timeout each time)."""
        attempt = 0
        start = time.monotonic()
        if (self._failing and self.fallback is not None and
                start < self._sync_retry_at):
            self.local_ranges += 1
            return self.fallback(t, 1)
        while True:
            try:
                r = self._fetch(t, 1)
                self.fetches += 1
                if self._failing:
                    log.warning("%s: the server answers again", self.describe)
                self._failing, self._warned = False, False
                self._sync_attempt = 0
                return self._swap_in(r, t)
            except AnnealError as e:
                if not e.retryable:
                    raise
                self.failures += 1
                self._failing, self._last_error = True, e
                if not self._warned:
                    self._warn_outage(t, None)
                if self.fallback is not None:
                    self._sync_attempt += 1
                    self._sync_retry_at = time.monotonic() + \
                        self.backoff.delay(self._sync_attempt - 1)
                    self.local_ranges += 1
                    return self.fallback(t, 1)
                if (self.block_timeout is not None and
                        time.monotonic() - start > self.block_timeout):
                    raise ServerUnreachableError(
                        "%s: step %d: the server has been unreachable for "
                        "%.1f s (block_timeout): %s" % (
                            self.describe, t, time.monotonic() - start, e))
                time.sleep(max(self.backoff.delay(attempt),
                               e.retry_delay or 0.0))
                attempt += 1

    # -- the background thread ----------------------------------------------

    def _worker(self) -> None:
        try:
            self._worker_loop()
        except BaseException as e:  # never leave the training thread waiting
            log.exception("%s: the prefetch thread failed", self.describe)
            with self._cond:
                self._fatal, self._want = e, None
                self._thread = None  # the next request starts a new one
                self._cond.notify_all()

    def _worker_loop(self) -> None:
        attempt = 0
        while True:
            with self._cond:
                while self._want is None and not self._closed:
                    self._cond.wait()
                if self._closed:
                    return
                want = self._want
            start, count = want, self.window
            offline = self._offline  # the consumer may swap the list
            if offline and want - offline[0].start_step < MAX_VERIFY_STEPS:
                # Include the steps applied offline, to check them.
                start = offline[0].start_step
                count = want - start + self.window
            cpu = time.thread_time()
            try:
                r = self._fetch(start, count)
            except AnnealError as e:
                self.worker_cpu_seconds += time.thread_time() - cpu
                if not e.retryable:
                    log.error("%s: fetching steps from %d failed: %s",
                              self.describe, start, e)
                    with self._cond:
                        self._fatal, self._want = e, None
                        self._cond.notify_all()
                    continue
                self.failures += 1
                with self._cond:
                    self._failing, self._last_error = True, e
                    self._cond.notify_all()
                    # Sleep out the backoff: requests (one per step during
                    # an outage) notify the condition, only close() ends it.
                    wake = time.monotonic() + max(self.backoff.delay(attempt),
                                                  e.retry_delay or 0.0)
                    while not self._closed:
                        left = wake - time.monotonic()
                        if left <= 0:
                            break
                        self._cond.wait(left)
                attempt += 1
                continue
            except ReferenceError:  # the owner was garbage-collected
                return
            except Exception as e:  # a bug or a bad answer: do not spin
                log.exception("%s: fetching steps from %d failed",
                              self.describe, start)
                with self._cond:
                    self._fatal, self._want = e, None
                    self._cond.notify_all()
                continue
            self.worker_cpu_seconds += time.thread_time() - cpu
            self.fetches += 1
            if self._failing:
                log.warning("%s: the server answers again (steps %d..%d "
                            "fetched)", self.describe, r.start_step,
                            r.end_step - 1)
            if self._on_fetched is not None:
                try:
                    self._on_fetched(r)
                except Exception:  # keep prefetching regardless
                    log.exception("%s: on_fetched hook failed", self.describe)
            attempt = 0
            with self._cond:
                self._ready = r
                self._failing, self._warned, self._last_error = False, False, None
                self._want = None
                self._cond.notify_all()
