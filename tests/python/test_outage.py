"""Outages: the server is stopped mid-run and started again (same port, same
database). Training keeps stepping on the prefetched window, blocks only when
the window is used up (or falls back to annealctl when configured), and
recovers; no step is ever applied with an LR other than the timeline's.

"Applied" is what the optimizer's param group held at each step; every test
ends by comparing it with what the server serves for the same steps.
"""

from __future__ import annotations

import threading
import time
import warnings

import pytest

torch = pytest.importorskip("torch")
anneal = pytest.importorskip("anneal")
from anneal.fallback import LocalTimeline, find_annealctl  # noqa: E402
from anneal.torch import AnnealLR  # noqa: E402

FAST = anneal.Backoff(initial=0.02, maximum=0.2)

SGDR = {"max_lr": 0.1, "min_lr": 0.001,
        "warm_restarts": {"period": 10, "period_mult": 2}}


class Recorder:
    """An SGD optimizer, its AnnealLR, and the (lr, momentum) of each step."""

    def __init__(self, client, name, **kw):
        self.opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))],
                                   lr=0.1, momentum=0.9)
        self.s = AnnealLR(self.opt, name, client=client, backoff=FAST, **kw)
        self.applied = [self._now()]

    def _now(self):
        g = self.opt.param_groups[0]
        return g["lr"], g["momentum"]

    def step_to(self, t, pause=0.0):
        durations = []
        while self.s.last_epoch < t:
            start = time.monotonic()
            self.s.step()
            durations.append(time.monotonic() - start)
            self.applied.append(self._now())
            if pause:
                time.sleep(pause)
        return durations

    def step_until_recovered(self, timeout=15.0):
        """Steps slowly until the server's ranges are used again."""
        deadline = time.monotonic() + timeout
        while (self.s._range.source != "server" or self.s.prefetcher.outage):
            assert time.monotonic() < deadline, "no recovery"
            self.step_to(self.s.last_epoch + 1, pause=0.005)

    def settle(self):
        assert self.s.prefetcher.settle()
        self.step_to(self.s.last_epoch + 1)  # takes the fetched range

    def assert_exact(self, client, name, momentum=False):
        served = client.evaluate_range(name, 0, len(self.applied),
                                       inspect_only=True)
        assert [lr for lr, _ in self.applied] == list(served.lr)
        if momentum:
            for step, (_, m) in enumerate(self.applied):
                r = served.result(step)
                if r.momentum is not None:
                    assert m == r.momentum, step


def test_outage_keeps_stepping_on_the_window_and_recovers(server, client):
    client.create("o", SGDR)
    # block_timeout: a step that waited for the server would fail the test.
    rec = Recorder(client, "o", window=32, block_timeout=10)
    rec.step_to(16)
    rec.settle()                        # the window is now [16, 48)
    assert rec.s._range.end_step == 48

    assert server.stop() == 0
    with pytest.warns(anneal.AnnealOutageWarning, match="unreachable"):
        durations = rec.step_to(40, pause=0.002)
    assert max(durations) < 0.5         # no step waited for the server
    assert rec.s.prefetcher.outage and rec.s.prefetcher.failures > 0

    server.start(same_port=True)
    fetches = rec.s.prefetcher.fetches
    rec.step_to(150, pause=0.002)       # recovers (or blocks briefly at 48)
    assert not rec.s.prefetcher.outage
    assert rec.s.prefetcher.fetches > fetches
    rec.assert_exact(client, "o")
    rec.s.close()


def test_exhausted_window_blocks_until_the_server_is_back(server, client):
    client.create("b", SGDR)
    rec = Recorder(client, "b", window=16)
    rec.step_to(8)
    rec.settle()                        # [8, 24)
    assert server.stop() == 0
    timer = threading.Timer(1.0, server.start, kwargs={"same_port": True})
    timer.start()
    first = rec.s.last_epoch + 1
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", anneal.AnnealOutageWarning)
        durations = rec.step_to(60)
    timer.join()
    slowest = max(range(len(durations)), key=durations.__getitem__)
    assert first + slowest == 24        # the first step past the window
    assert durations[slowest] > 0.5     # waited for the server
    rec.assert_exact(client, "b")
    rec.s.close()


def test_block_timeout_raises(server, client):
    client.create("t", SGDR)
    rec = Recorder(client, "t", window=16, block_timeout=0.5)
    rec.settle()
    assert server.stop() == 0
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", anneal.AnnealOutageWarning)
        with pytest.raises(anneal.ServerUnreachableError,
                           match="past the prefetched window"):
            rec.step_to(100)
    assert rec.s.last_epoch == rec.s._range.end_step  # the step it needed
    rec.s.close()


def _timeline(client, name):
    """A timeline with every kind of segment, momentum on and off."""
    client.create(name, {"max_lr": 0.1, "min_lr": 0.001,
                         "warmup": {"steps": 3},
                         "warm_restarts": {"period": 10, "period_mult": 2},
                         "momentum": {"base": 0.85, "max": 0.95}})
    client.update(name, effective_step=25,
                  spec={"max_lr": 0.05, "warm_restarts": {"period": 7},
                        "momentum": {"base": 0.8, "max": 0.9}})
    client.restart(name, at_step=47)
    return client.update(name, effective_step=90,
                         spec={"max_lr": 0.02, "cosine": {"period": 50}})


def test_local_timeline_equals_the_server(client):
    info = _timeline(client, "tl")
    assert [s.kind for s in info.timeline] == [
        "CREATE", "UPDATE", "RESTART", "UPDATE"]
    local = LocalTimeline(info.timeline, find_annealctl()).evaluate_range(
        0, 200)
    served = client.evaluate_range("tl", 0, 200, inspect_only=True)
    assert local.source == "local" and served.source == "server"
    for f in ["start_step", "lr", "flags", "cycle", "step_in_cycle",
              "cycle_length", "momentum", "beta1_bias_correction"]:
        a, b = getattr(local, f), getattr(served, f)
        assert (a == b if f == "start_step" or a is None or b is None
                else list(a) == list(b)), f
    # and from the middle of a segment
    part = LocalTimeline(info.timeline, find_annealctl()).evaluate_range(
        40, 60)
    assert list(part.lr) == list(served.lr[40:100])
    assert list(part.flags) == list(served.flags[40:100])


def test_local_fallback_is_exact_through_an_outage(server, client):
    _timeline(client, "fb")
    rec = Recorder(client, "fb", window=16, local_fallback=True)
    rec.step_to(8)
    rec.settle()
    assert server.stop() == 0
    with pytest.warns(anneal.AnnealOutageWarning):
        durations = rec.step_to(150)
    assert rec.s.prefetcher.local_ranges >= 5
    assert max(durations) < 1.0         # no blocking, only annealctl runs
    server.start(same_port=True)
    rec.step_until_recovered()
    rec.step_to(rec.s.last_epoch + 50)
    assert rec.s.prefetcher.mismatches == []
    rec.assert_exact(client, "fb", momentum=True)
    rec.s.close()


def test_change_made_while_offline_is_reported(server, client):
    client.create("off", SGDR)
    rec = Recorder(client, "off", window=16, local_fallback=True)
    rec.step_to(8)
    rec.settle()                        # served up to 23
    port = server.port
    assert server.stop() == 0
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", anneal.AnnealOutageWarning)
        rec.step_to(60)                 # 24..60 applied from annealctl
    # The server comes back elsewhere first; an operator changes the
    # schedule from step 24 (the first step it has not served).
    server.start()
    with anneal.Client(server.address) as operator:
        u = operator.update("off", spec={"max_lr": 0.05, "constant": {}})
    assert u.timeline[-1].from_step == 24
    assert server.stop() == 0
    server.port = port
    server.start(same_port=True)
    with pytest.warns(anneal.AnnealMismatchWarning, match="differ"):
        rec.step_until_recovered()
    # Every step applied offline from 24 on (until the client reconnected).
    steps = [step for step, _, _ in rec.s.prefetcher.mismatches]
    assert steps == list(range(24, rec.s.last_epoch))
    assert all(server_lr == 0.05 for _, _, server_lr in
               rec.s.prefetcher.mismatches)
    assert rec.applied[-1][0] == 0.05   # and from then on the new spec
    rec.s.close()


def test_rpc_per_step_mode_falls_back_per_step(server, client):
    client.create("sync", SGDR)
    rec = Recorder(client, "sync", prefetch=False, local_fallback=True)
    rec.step_to(5)
    assert server.stop() == 0
    with pytest.warns(anneal.AnnealOutageWarning):
        rec.step_to(15)
    server.start(same_port=True)
    rec.step_until_recovered()
    rec.assert_exact(client, "sync")
    rec.s.close()


def test_deleted_schedule_is_raised_when_the_window_runs_out(client):
    client.create("gone", SGDR)
    rec = Recorder(client, "gone", window=16)
    rec.settle()
    client.delete("gone")
    with pytest.raises(anneal.NotFoundError):
        rec.step_to(100)
    assert rec.s.last_epoch >= 16
    rec.s.close()


def test_starts_offline_and_creates_the_schedule_when_the_server_is_back(
        server, client):
    """The server is down when the job starts: with local_fallback and
    create_if_missing the job starts on the spec, offline, and once the
    server answers it creates the schedule and takes the server's values;
    every LR it applied is the one the server serves for that step."""
    assert server.stop() == 0
    with pytest.warns(anneal.AnnealOutageWarning, match="starting offline"):
        rec = Recorder(client, "born-offline", window=16, local_fallback=True,
                       create_if_missing=SGDR)
    with pytest.warns(anneal.AnnealOutageWarning, match="unreachable"):
        rec.step_to(60)
    assert rec.s.prefetcher.local_ranges >= 3
    server.start(same_port=True)
    rec.step_until_recovered()
    rec.step_to(rec.s.last_epoch + 40)
    s = client.get("born-offline")
    assert [g.kind for g in s.timeline] == ["CREATE"]
    assert s.timeline[0].spec == anneal.client.to_spec(SGDR)
    assert rec.s.prefetcher.mismatches == []
    rec.assert_exact(client, "born-offline", momentum=True)
    rec.s.close()


def test_an_unreachable_server_without_a_start_spec_raises(server, client):
    assert server.stop() == 0
    with pytest.raises(anneal.UnavailableError):
        AnnealLR(torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=0.1),
                 "nothing", client=client, local_fallback=True)
