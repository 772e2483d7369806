"""WatchSchedules against a live server: the catch-up and every live event
kind, resuming with since_revisions (nothing missed, nothing twice), a
watcher that stops reading slows nobody, the watcher cap, bad requests, and
the end of every watch at shutdown."""

from __future__ import annotations

import queue
import threading
import time

import pytest

import anneal
from anneal.v1 import service_pb2

from conftest import ServerProcess

K = service_pb2.WatchEvent.Kind
SGDR = {"max_lr": 0.1, "min_lr": 0.001, "warm_restarts": {"period": 10}}


def kinds(events):
    return [(K.Name(e.kind), e.name.split("/")[-1] if e.name else "")
            for e in events]


class Reader:
    """Reads a watch on a thread; next_kind() waits for an event."""

    def __init__(self, watch):
        self.watch = watch
        self.events: "queue.Queue" = queue.Queue()
        self.error = None
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self):
        try:
            for e in self.watch:
                self.events.put(e)
        except Exception as e:  # the stream's end, kept for the test
            self.error = e
        self.events.put(None)

    def take(self, n, timeout=10):
        out = []
        for _ in range(n):
            e = self.events.get(timeout=timeout)
            assert e is not None, "stream ended: %r" % self.error
            out.append(e)
        return out


def test_catch_up_then_every_live_event(client):
    client.create("old", SGDR, labels={"team": "a"})
    client.create("other", SGDR, labels={"team": "b"})
    r = Reader(client.watch(filter='labels.team = "a"', include_reports=True))
    first = r.take(2)
    assert kinds(first) == [("CURRENT", "old"), ("SYNCED", "")]
    assert first[0].schedule.spec.max_lr == 0.1

    client.create("new", SGDR, labels={"team": "a"})
    client.create("ignored", SGDR, labels={"team": "b"})
    client.update("new", spec={"max_lr": 0.05, "min_lr": 0.001,
                               "warm_restarts": {"period": 10}})
    client.evaluate("new", 5)
    client.evaluate("new", 12)   # cycle 1 begins at 10
    client.restart("new")
    client.report("new", 12, {"loss": 0.5})
    client.delete("new", reason="finished")
    got = r.take(6)
    assert kinds(got) == [("CREATED", "new"), ("UPDATED", "new"),
                          ("CYCLE", "new"), ("RESTARTED", "new"),
                          ("REPORTED", "new"), ("DELETED", "new")]
    assert r.events.empty()  # "ignored" is team b
    assert [e.revision for e in got[:2]] == [1, 2]
    assert got[2].cycle == 1 and got[2].cycle_start_step == 10
    assert got[3].schedule.revision == 3
    assert got[4].report.metrics["loss"] == 0.5
    # Who deleted it and why: the peer address, as for any change without
    # an actor.
    assert got[5].actor.startswith(("ipv4:", "ipv6:")), got[5].actor
    assert got[5].reason == "finished"
    r.watch.cancel()


def test_resume_misses_nothing_and_repeats_nothing(client):
    for name in ("a", "b", "c"):
        client.create(name, SGDR)
    w = client.watch()
    r = Reader(w)
    assert kinds(r.take(4)) == [("CURRENT", "a"), ("CURRENT", "b"),
                                ("CURRENT", "c"), ("SYNCED", "")]
    client.update("a", display_name="seen live")
    assert kinds(r.take(1)) == [("UPDATED", "a")]
    w.cancel()
    r.thread.join(5)
    since = dict(w.revisions)
    assert since == {"schedules/a": 2, "schedules/b": 1, "schedules/c": 1}

    # While disconnected: b changes twice, c goes, d appears.
    client.update("b", display_name="one")
    client.update("b", display_name="two")
    client.delete("c")
    client.create("d", SGDR)
    r2 = Reader(client.watch(since_revisions=since))
    got = r2.take(4)
    assert sorted(kinds(got)[:3]) == [("CURRENT", "b"), ("CURRENT", "d"),
                                      ("DELETED", "c")]
    assert kinds(got)[3] == ("SYNCED", "")
    b = next(e for e in got if e.name.endswith("/b"))
    assert b.revision == 3 and b.schedule.display_name == "two"
    # "a" was at its revision: not sent again.
    assert not any(e.name.endswith("/a") for e in got)
    r2.watch.cancel()


def test_leaving_the_filter_is_a_delete_live_and_on_resume(client):
    client.create("v1", SGDR, labels={"team": "vision"})
    client.create("v2", SGDR, labels={"team": "vision"})
    w = client.watch(filter='labels.team = "vision"')
    r = Reader(w)
    assert kinds(r.take(3)) == [("CURRENT", "v1"), ("CURRENT", "v2"),
                                ("SYNCED", "")]
    client.update("v1", labels={"team": "nlp"})      # leaves
    client.update("v1", display_name="elsewhere")   # no longer watched
    client.create("v3", SGDR, labels={"team": "nlp"})
    client.update("v3", labels={"team": "vision"})  # enters
    got = r.take(2)
    assert kinds(got) == [("DELETED", "v1"), ("UPDATED", "v3")]
    assert got[0].revision == 1 and got[0].actor == ""
    w.cancel()
    r.thread.join(5)
    since = dict(w.revisions)
    assert "schedules/v1" not in since and "schedules/v3" in since
    # While disconnected v2 leaves: the resume says it went.
    client.update("v2", labels={"team": "nlp"})
    r2 = Reader(client.watch(filter='labels.team = "vision"',
                             since_revisions=since))
    assert kinds(r2.take(2)) == [("DELETED", "v2"), ("SYNCED", "")]
    r2.watch.cancel()


@pytest.fixture
def small_queue_server(tmp_path):
    s = ServerProcess(tmp_path, extra=["--watch_queue_events=16",
                                       "--max_watchers=2"])
    s.start()
    yield s
    assert s.stop() == 0


def test_a_watcher_that_does_not_read_slows_nobody(small_queue_server):
    """gRPC buffers megabytes for a client that stops reading, so the cut
    itself (more than --watch_queue_events behind) is tested on the hub
    (watch_hub_test.cc); here, that such a watcher holds nobody up."""
    c = anneal.Client(small_queue_server.address)
    labels = {"k%02d" % i: "v" * 200 for i in range(60)}  # ~12 KB events
    c.create("s", SGDR, labels=labels)
    idle = c.watch()  # never read while the changes happen
    fast = Reader(c.watch())
    assert kinds(fast.take(2)) == [("CURRENT", "s"), ("SYNCED", "")]
    started = time.monotonic()
    for i in range(300):
        c.update("s", display_name="v%d" % i)
    elapsed = time.monotonic() - started
    got = fast.take(300)
    assert [e.schedule.display_name for e in got] == [
        "v%d" % i for i in range(300)]
    assert elapsed < 60
    # The cap: two watchers at most.
    with pytest.raises(anneal.ResourceExhaustedError, match="max_watchers"):
        next(iter(c.watch()))
    idle.cancel()
    fast.watch.cancel()
    c.close()


def test_bad_requests_name_the_field(client):
    with pytest.raises(anneal.AnnealError, match=r"names\[0\]"):
        next(iter(client.watch(["Not A Name!"])))
    with pytest.raises(anneal.AnnealError, match="filter"):
        next(iter(client.watch(filter="labels.")))
    with pytest.raises(anneal.AnnealError, match="not both"):
        next(iter(client.watch(["a"], filter="labels.x:*")))
    with pytest.raises(anneal.InvalidArgumentError,
                       match=r'since_revisions\["schedules/a"\]: must be >= 0, '
                             r"got -5"):
        next(iter(client.watch(["a"], since_revisions={"schedules/a": -5})))
    with pytest.raises(anneal.InvalidArgumentError,
                       match=r'since_revisions\["schedules/d"\]: must be one '
                             r"of names when names are given"):
        next(iter(client.watch(["a"], since_revisions={"schedules/d": 1})))
    many = ["n%d" % i for i in range(10001)]
    with pytest.raises(anneal.InvalidArgumentError,
                       match=r"INVALID_ARGUMENT: names: must be at most 10000 names "
                             r"\(max_schedules\), got 10001"):
        next(iter(client.watch(many)))
    with pytest.raises(anneal.InvalidArgumentError,
                       match=r"INVALID_ARGUMENT: since_revisions: must be at most 10000"):
        next(iter(client.watch(
            since_revisions={"schedules/" + n: 1 for n in many})))


def test_shutdown_ends_every_watch(server, client):
    client.create("s", SGDR)
    r = Reader(client.watch())
    r.take(2)
    assert server.stop() == 0
    assert r.events.get(timeout=10) is None
    assert isinstance(r.error, anneal.UnavailableError), r.error
    server.start()  # the fixture stops it again
