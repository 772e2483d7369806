"""Learning of a schedule's changes as they happen (WatchSchedules), for
AnnealLR: on an update or a restart it asks its prefetcher for a refresh at
the next step, so `scheduler.revision` (and the window) follow the change one
fetch after it is durable instead of up to `refresh_after` steps later.

The LRs a job applies do not depend on it: a change takes effect only after
the steps already served, which the window covers (docs/python-client.md).
When the server lacks WatchSchedules (UNIMPLEMENTED) it stops and refreshes
stay as they were; a broken stream is resumed with its revisions after a
backoff.
"""

from __future__ import annotations

import logging
import threading
from typing import Any, Callable, Optional

import grpc

from anneal.client import Client
from anneal.errors import AnnealError
from anneal.v1 import service_pb2

log = logging.getLogger("anneal")

_CHANGES = (service_pb2.WatchEvent.UPDATED, service_pb2.WatchEvent.RESTARTED,
            service_pb2.WatchEvent.CURRENT)


class ChangeWatch:
    """A daemon thread watching one schedule; `on_change(revision)` runs on
    it for each change (and for the schedule's state when a stream begins)."""

    def __init__(self, client: Client, schedule: str,
                 on_change: Callable[[int], None], *,
                 retry_delay: float = 1.0) -> None:
        self._client = client
        self._schedule = schedule
        self._on_change = on_change
        self._retry_delay = retry_delay
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._watch: Optional[Any] = None
        self.events = 0       # change events seen (tests)
        self.supported = True  # False once the server said UNIMPLEMENTED
        self._thread = threading.Thread(target=self._run, daemon=True,
                                        name="anneal-watch")
        self._thread.start()

    def close(self) -> None:
        self._stop.set()
        with self._lock:
            if self._watch is not None:
                self._watch.cancel()
        if self._thread is not threading.current_thread():
            self._thread.join(timeout=5)

    def _run(self) -> None:
        since: dict = {}
        while not self._stop.is_set():
            with self._lock:
                if self._stop.is_set():
                    return
                self._watch = self._client.watch([self._schedule],
                                                 since_revisions=since)
                watch = self._watch
            try:
                for event in watch:
                    if event.kind in _CHANGES and event.name == self._schedule:
                        self.events += 1
                        self._on_change(event.revision)
                return  # cancelled (close) or ended cleanly
            except ReferenceError:  # the scheduler was collected
                return
            except AnnealError as e:
                if e.code == grpc.StatusCode.UNIMPLEMENTED:
                    self.supported = False
                    log.info("anneal %s: the server has no WatchSchedules; "
                             "changes arrive with the next refresh",
                             self._schedule)
                    return
                since = dict(watch.revisions)
                log.debug("anneal %s: watch ended (%s); resuming",
                          self._schedule, e)
            self._stop.wait(self._retry_delay)
