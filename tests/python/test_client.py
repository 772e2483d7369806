"""anneal.Client against the real server: every RPC, typed results, errors,
and the StepRange unpacking (flags, momentum arrays) against Evaluate."""

from __future__ import annotations

import dataclasses
import threading
import time

import pytest

anneal = pytest.importorskip("anneal")

SGDR = {"max_lr": 0.1, "min_lr": 1e-4,
        "warm_restarts": {"period": 10, "period_mult": 2}}
ONE_CYCLE = {"max_lr": 0.1, "one_cycle": {"total_steps": 50},
             "momentum": {"base": 0.85, "max": 0.95}}


def test_create_get_list_update_delete(client):
    s = client.create("vision-a", SGDR, display_name="A",
                      labels={"team": "vision"}, reason="test")
    assert s.name == "schedules/vision-a" and s.id == "vision-a"
    assert s.revision == 1 and s.max_step_served == -1
    assert [seg.kind for seg in s.timeline] == ["CREATE"]
    assert s.timeline[0].reason == "test"
    assert s.spec.warm_restarts.period == 10
    client.create("other", {"max_lr": 1.0, "constant": {}},
                  labels={"team": "nlp"})

    assert client.get("vision-a") == s
    assert client.get("schedules/vision-a").etag == s.etag
    assert [x.id for x in client.list()] == ["other", "vision-a"]
    assert [x.id for x in client.list('labels.team = "vision"')] == [
        "vision-a"]
    assert [x.id for x in client.list(page_size=1)] == ["other", "vision-a"]

    u = client.update("vision-a", spec={"max_lr": 0.05, "constant": {}},
                      effective_step=7, reason="smaller")
    assert u.revision == 2
    assert [(seg.kind, seg.from_step) for seg in u.timeline] == [
        ("CREATE", 0), ("UPDATE", 7)]
    assert client.evaluate("vision-a", 7).lr == 0.05

    with pytest.raises(anneal.AbortedError):
        client.delete("vision-a", etag=s.etag)  # stale etag
    client.delete("vision-a", etag=u.etag)
    with pytest.raises(anneal.NotFoundError) as e:
        client.get("vision-a")
    assert not e.value.retryable


def test_errors_are_typed(client):
    with pytest.raises(anneal.InvalidArgumentError) as e:
        client.create("bad", {"max_lr": 0.1, "warm_restarts": {"period": 0}})
    assert e.value.field == "schedule.spec.warm_restarts.period"
    client.create("dup", SGDR)
    with pytest.raises(anneal.AlreadyExistsError):
        client.create("dup", SGDR)
    with pytest.raises(anneal.InvalidArgumentError):
        client.evaluate("dup", -1)
    client.evaluate_range("dup", 0, 5)  # serves 0..4
    with pytest.raises(anneal.FailedPreconditionError):
        client.restart("dup", at_step=3)


def test_range_matches_evaluate_step_by_step(client):
    client.create("oc", ONE_CYCLE)
    r = client.evaluate_range("oc", 0, 60, inspect_only=True)
    assert r.start_step == 0 and len(r) == 60 and r.revision == 1
    assert r.momentum is not None and len(r.momentum) == 60
    for step, from_range in zip(range(60), r):
        one = client.evaluate("oc", step)
        assert from_range == one, step  # bit for bit, every field
    last = r.result(49)
    assert last.snapshot and last.phase == anneal.Phase.ANNEAL
    assert r.result(55).phase == anneal.Phase.HOLD
    # The range was inspect_only; the Evaluate calls served up to 59.
    assert client.get("oc").max_step_served == 59
    # Sent as raw arrays: numpy arrays over the bytes, Python numbers out.
    import numpy
    assert isinstance(r.lr, numpy.ndarray) and r.lr.dtype == numpy.float64
    assert type(last.lr) is float and type(last.cycle) is int


def test_raw_ranges_without_numpy(client, monkeypatch):
    """Where numpy is missing, raw arrays become array.array, same values."""
    import array
    from anneal import results
    from anneal.v1 import service_pb2
    client.create("nonp", ONE_CYCLE)
    want = client.evaluate_range("nonp", 0, 40, inspect_only=True)
    request = service_pb2.EvaluateRangeRequest(
        name="schedules/nonp", start_step=0, count=40, inspect_only=True,
        raw_arrays=True)
    response = client._call("EvaluateRange", request, 10)
    monkeypatch.setattr(results, "_np", None)
    got = results.StepRange.from_proto(response.range, response.revision)
    assert isinstance(got.lr, array.array) and isinstance(got.flags,
                                                          array.array)
    assert list(got) == list(want)


SHORT_CYCLES = {"max_lr": 0.1, "min_lr": 0.01, "cyclic": {"step_size_up": 1}}


@pytest.mark.parametrize("spec", [SGDR, ONE_CYCLE, SHORT_CYCLES])
def test_compact_ranges_equal_every_encoding(client, monkeypatch, spec):
    """compact (the Client's default): the per-step integers come as runs
    when smaller, and expand to the same steps as the repeated fields and
    the raw arrays, with numpy and without."""
    from anneal import results
    from anneal.v1 import service_pb2
    client.create("compact", spec)
    ranges = {}
    for encoding in ("packed", "raw", "compact"):
        request = service_pb2.EvaluateRangeRequest(
            name="schedules/compact", start_step=3, count=2000,
            inspect_only=True, raw_arrays=encoding != "packed",
            compact=encoding == "compact")
        ranges[encoding] = client._call("EvaluateRange", request, 10).range
    wire = {e: len(r.SerializeToString()) for e, r in ranges.items()}
    runs = bool(ranges["compact"].runs_raw)
    # Runs are used only when smaller: cycles of 2 steps make one a step.
    assert runs == (spec is not SHORT_CYCLES)
    if runs:
        assert wire["compact"] < wire["raw"] * 0.75, wire
    else:
        assert wire["compact"] == wire["raw"]
    if spec is ONE_CYCLE:
        # The bias correction reaches 1 and stays: sent as value runs.
        assert ranges["compact"].beta1_bias_correction_runs_raw
        assert not ranges["compact"].beta1_bias_correction_raw
    want = list(results.StepRange.from_proto(ranges["packed"]))
    assert list(results.StepRange.from_proto(ranges["raw"])) == want
    assert list(results.StepRange.from_proto(ranges["compact"])) == want
    client_range = client.evaluate_range("compact", 3, 2000, inspect_only=True)
    assert [dataclasses.replace(r, revision=None) for r in client_range] == want
    monkeypatch.setattr(results, "_np", None)
    assert list(results.StepRange.from_proto(ranges["compact"])) == want


def test_runs_that_do_not_cover_the_range_are_refused():
    import struct
    from anneal import results
    from anneal.v1 import resources_pb2
    lr = struct.pack("<3d", 0.1, 0.1, 0.1)
    for runs in (struct.pack("<5q", 2, 0, 0, 10, 0),        # short
                 struct.pack("<5q", 4, 0, 0, 10, 0),        # long
                 struct.pack("<5q", -1, 0, 0, 10, 0) * 3,   # negative
                 struct.pack("<5q", 3, 0, 0, 10, 0)[:-1]):  # partial
        r = resources_pb2.StepRange(lr_raw=lr, runs_raw=runs)
        with pytest.raises(ValueError):
            results.StepRange.from_proto(r)
    for runs in (struct.pack("<qd", 2, 1.0),                    # short
                 struct.pack("<qd", 0, 1.0) + struct.pack("<qd", 3, 1.0),
                 struct.pack("<qd", 3, 1.0)[:-1]):              # partial
        r = resources_pb2.StepRange(
            lr_raw=lr, momentum_raw=lr, beta1_bias_correction_runs_raw=runs,
            runs_raw=struct.pack("<5q", 3, 0, 0, 10, 4))
        with pytest.raises(ValueError):
            results.StepRange.from_proto(r)
    ok = resources_pb2.StepRange(lr_raw=lr,
                                 runs_raw=struct.pack("<5q", 3, 2, 5, 10, 0))
    got = results.StepRange.from_proto(ok)
    assert [s.step_in_cycle for s in got] == [5, 6, 7]
    assert [s.cycle for s in got] == [2, 2, 2]


def test_restart_and_flags(client):
    client.create("sgdr", SGDR)
    s = client.restart("sgdr", at_step=15, reason="plateau")
    assert [(x.kind, x.from_step) for x in s.timeline] == [
        ("CREATE", 0), ("RESTART", 15)]
    r = client.evaluate_range("sgdr", 0, 40, inspect_only=True)
    restarts = [x.step for x in r if x.restart]
    snapshots = [x.step for x in r if x.snapshot]
    # SGDR's own restart, the warm restart, then the restarted clock's own.
    assert restarts == [10, 15, 25]
    assert snapshots == [9, 14, 24]    # the step before each
    assert r.result(15).lr == 0.1 and r.result(15).step_in_cycle == 0
    assert r.result(10).flags & anneal.FLAG_RESTART


def test_advance_and_simulate(client):
    client.create("adv", SGDR)
    a = client.advance("adv", request_id="r1")
    assert a.position == 1 and a.result.step == 1 and a.revision == 1
    again = client.advance("adv", request_id="r1")  # a retry: same answer
    assert again.position == 1
    with pytest.raises(anneal.FailedPreconditionError):
        client.advance("adv", expected_position=0, request_id="r2")
    sim = client.simulate(SGDR, 0, 30)
    assert sim.revision == 0
    assert list(sim.lr) == list(
        client.evaluate_range("adv", 0, 30, inspect_only=True).lr)


def test_unreachable_server_is_unavailable():
    c = anneal.Client("127.0.0.1:1", timeout=2)
    with pytest.raises(anneal.UnavailableError) as e:
        c.get("x")
    assert e.value.retryable
    c.close()


def test_update_never_rewrites_a_served_step(client):
    """docs/api.md: "Changes never rewrite an LR that was served". A reader
    prefetching in a loop while an operator updates must only ever have
    been served values that the final timeline agrees with."""
    rewritten = 0
    for attempt in range(5):
        name = "race-%d" % attempt
        client.create(name, {"max_lr": 0.1, "warm_restarts": {"period": 10}})
        served = []
        stop = threading.Event()

        def reader():
            t = 0
            while not stop.is_set():
                r = client.evaluate_range(name, t, 32)
                served.extend(zip(range(t, t + 32), r.lr))
                t += 1

        th = threading.Thread(target=reader)
        th.start()
        time.sleep(0.03)
        client.update(name, spec={"max_lr": 0.05, "constant": {}})
        time.sleep(0.03)
        stop.set()
        th.join()
        last = max(step for step, _ in served)
        final = client.evaluate_range(name, 0, last + 1, inspect_only=True).lr
        rewritten += sum(final[step] != lr for step, lr in served)
    assert rewritten == 0


def test_long_ranges_come_in_pieces_of_one_revision(client, monkeypatch):
    """A range longer than RANGE_CHUNK_STEPS is fetched as pieces at once;
    it equals one call's answer bit for bit, and pieces evaluated before an
    update that landed mid-fetch are fetched again at the new revision."""
    import numpy
    from anneal import client as client_module
    from anneal.v1 import service_pb2
    monkeypatch.setattr(client_module, "RANGE_CHUNK_STEPS", 1000)
    client.create("pieces", ONE_CYCLE)
    whole = client._call("EvaluateRange", service_pb2.EvaluateRangeRequest(
        name="schedules/pieces", start_step=5, count=4500, inspect_only=True,
        raw_arrays=True, compact=True), 10)
    want = anneal.StepRange.from_proto(whole.range, whole.revision)
    got = client.evaluate_range("pieces", 5, 4500, inspect_only=True)
    assert list(got) == list(want) and got.revision == 1
    for f in ("lr", "momentum", "cycle", "flags", "step_in_cycle"):
        assert numpy.array_equal(getattr(got, f), getattr(want, f)), f

    # An update lands after the first piece was answered.
    stub = client._stub
    real = stub.EvaluateRange

    class Racing:
        calls = 0

        def future(self, request, **kw):
            f = real.future(request, **kw)
            Racing.calls += 1
            if Racing.calls == 1:
                f.result()
                client.update("pieces", spec={"max_lr": 0.05, "constant": {}},
                              effective_step=3000)
            return f

        def __call__(self, *a, **kw):
            return real(*a, **kw)

    monkeypatch.setattr(stub, "EvaluateRange", Racing())
    got = client.evaluate_range("pieces", 5, 4500, inspect_only=True)
    assert got.revision == 2
    assert Racing.calls > 5  # the first piece was fetched again
    monkeypatch.setattr(stub, "EvaluateRange", real)
    assert list(got) == list(client.evaluate_range("pieces", 5, 4500,
                                                   inspect_only=True))
    assert got.result(3004).lr == 0.05 and got.result(2000).lr != 0.05


def test_an_update_replaced_by_a_restart_stays_in_the_history(client):
    """The README's tour: an update, then a restart, both from the next
    unserved step. The restart replaces the update's segment (and runs its
    spec); Schedule.superseded keeps who made the update."""
    client.create("tour", SGDR)
    client.evaluate_range("tour", 0, 2)  # serves 0 and 1
    client.update("tour", spec={"max_lr": 0.05, "constant": {}},
                  reason="switch", actor="alice")
    s = client.restart("tour", reason="plateau", actor="bob")
    assert [(g.kind, g.from_step) for g in s.timeline] == [
        ("CREATE", 0), ("RESTART", 2)]
    assert s.timeline[1].spec.max_lr == 0.05  # the update's spec
    assert [(g.kind, g.from_step, g.revision, g.replaced_by_revision,
             g.reason) for g in s.superseded] == [
        ("UPDATE", 2, 2, 3, "switch")]
    assert "alice" in s.superseded[0].actor
    assert not s.superseded[0].spec.HasField("constant")  # stamps only
    assert client.get("tour").superseded == s.superseded  # durable
