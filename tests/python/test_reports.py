"""Metric reports: anneal.Client.report / list_reports against the real
server, anneal.MetricReporter (background delivery through an outage, merging,
refusals, the bounded queue) and AnnealLR.report in a training loop."""

from __future__ import annotations

import math
import time
import warnings

import pytest

anneal = pytest.importorskip("anneal")

FAST = anneal.Backoff(initial=0.02, maximum=0.2)
COSINE = {"max_lr": 0.1, "cosine": {"period": 100}}


def steps(client, name, **kw):
    return [r.step for r in client.list_reports(name, **kw)]


def test_report_and_list_round_trip(client):
    client.create("r", COSINE)
    got = client.report("r", 10, {"loss": 2.5, "acc": 0.125})
    assert isinstance(got, anneal.MetricReport)
    assert got.step == 10 and got.revision == 1
    assert got.metrics == {"loss": 2.5, "acc": 0.125}
    assert got.report_time.tzinfo is not None
    client.report("r", 10, {"loss": 2.25, "val/loss": 3.0})   # merges
    client.report("schedules/r", 5, {"loss": float("nan"),
                                     "grad_norm": float("inf")})
    reports = list(client.list_reports("r"))
    assert [r.step for r in reports] == [5, 10]
    assert math.isnan(reports[0].metrics["loss"])
    assert reports[0].metrics["grad_norm"] == float("inf")
    assert reports[1].metrics == {"loss": 2.25, "acc": 0.125, "val/loss": 3.0}

    for step in range(20, 30):
        client.report("r", step, {"loss": 1.0 / step})
    # Pages of 3 come back as one sequence; bounds and selection apply.
    assert steps(client, "r", page_size=3) == [5, 10] + list(range(20, 30))
    assert steps(client, "r", start_step=10, end_step=22) == [10, 20, 21]
    only = list(client.list_reports("r", metrics=["val/loss"]))
    assert [(r.step, r.metrics) for r in only] == [(10, {"val/loss": 3.0})]


def test_report_takes_tensors_and_numpy_scalars(client):
    torch = pytest.importorskip("torch")
    client.create("t", COSINE)
    got = client.report("t", 0, {"loss": torch.tensor(0.75),
                                 "n": torch.tensor(3)})
    assert got.metrics == {"loss": 0.75, "n": 3.0}


def test_report_errors_are_typed_and_name_the_field(client):
    client.create("e", COSINE)
    with pytest.raises(anneal.InvalidArgumentError) as e:
        client.report("e", -1, {"loss": 1.0})
    assert e.value.field == "step"
    with pytest.raises(anneal.InvalidArgumentError) as e:
        client.report("e", 1, {"9lives": 1.0})
    assert e.value.field == 'metrics["9lives"]'
    assert "^[A-Za-z_][A-Za-z0-9_./-]{0,63}$" in e.value.message
    with pytest.raises(anneal.InvalidArgumentError) as e:
        client.report("e", 1, {})
    assert e.value.field == "metrics"
    with pytest.raises(anneal.NotFoundError):
        client.report("missing", 1, {"loss": 1.0})
    with pytest.raises(anneal.InvalidArgumentError) as e:
        list(client.list_reports("e", start_step=5, end_step=1))
    assert e.value.field == "end_step"
    with pytest.raises(TypeError, match="write"):
        list(client.list_reports("e", metrics="loss"))
    with pytest.raises((TypeError, ValueError)):
        client.report("e", 1, {"loss": "high"})


def test_reporter_sends_everything_in_the_background(client):
    client.create("bg", COSINE)
    reporter = anneal.MetricReporter(client, "bg", rpc_timeout=5)
    start = time.monotonic()
    for step in range(300):
        reporter.report(step, {"loss": 1.0 / (step + 1)})
    queued_in = time.monotonic() - start
    assert reporter.flush(timeout=30)
    assert queued_in < 0.5              # report() never waited for the server
    assert reporter.sent == 300 and reporter.dropped == 0
    assert steps(client, "bg") == list(range(300))
    reporter.close()
    reporter.close()                    # a second close does nothing
    with pytest.raises(RuntimeError):
        reporter.report(1, {"loss": 1.0})


def test_reporter_merges_queued_reports_of_a_step(server, client):
    client.create("m", COSINE)
    assert server.stop() == 0           # nothing can be sent: all queue up
    reporter = anneal.MetricReporter(client, "m", backoff=FAST, rpc_timeout=1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", anneal.AnnealOutageWarning)
        reporter.report(7, {"loss": 1.0, "acc": 0.5})
        reporter.report(7, {"loss": 0.5})
        reporter.report(8, {"loss": 0.25})
        time.sleep(0.3)
        server.start(same_port=True)
        assert reporter.flush(timeout=20)
    got = {r.step: r.metrics for r in client.list_reports("m")}
    assert got == {7: {"loss": 0.5, "acc": 0.5}, 8: {"loss": 0.25}}
    reporter.close()


def test_reporter_rides_out_an_outage_and_warns_once(server, client):
    client.create("o", COSINE)
    reporter = anneal.MetricReporter(client, "o", backoff=FAST, rpc_timeout=1)
    reporter.report(0, {"loss": 1.0})
    assert reporter.flush(timeout=10)
    assert server.stop() == 0
    with pytest.warns(anneal.AnnealOutageWarning,
                      match="cannot send metric reports") as caught:
        start = time.monotonic()
        for step in range(1, 40):
            reporter.report(step, {"loss": 1.0 / step})
            time.sleep(0.01)
        assert time.monotonic() - start < 5   # report() did not block
        assert reporter.pending > 0
        server.start(same_port=True)
        assert reporter.flush(timeout=20)
    outage = [w for w in caught
              if issubclass(w.category, anneal.AnnealOutageWarning)]
    assert len(outage) == 1
    assert steps(client, "o") == list(range(40))
    assert reporter.dropped == 0
    reporter.close()


def test_reporter_bounded_queue_drops_the_oldest(server, client):
    client.create("q", COSINE)
    assert server.stop() == 0
    reporter = anneal.MetricReporter(client, "q", max_pending=5,
                                     backoff=FAST, rpc_timeout=1)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for step in range(12):
            reporter.report(step, {"loss": float(step)})
        server.start(same_port=True)
        assert reporter.flush(timeout=20)
    assert any("oldest are dropped" in str(w.message) for w in caught)
    kept = steps(client, "q")
    # The newest five always arrive; a send in flight when the queue
    # overflowed may add an older one.
    assert kept[-5:] == list(range(7, 12))
    assert reporter.dropped + len(kept) >= 12
    reporter.close()


def test_reporter_checks_names_at_the_call(client):
    client.create("names", COSINE)
    reporter = anneal.MetricReporter(client, "names")
    reporter.report(1, {"loss": 1.0})
    with pytest.raises(ValueError, match=r'metrics\["has space"\]: must match'):
        reporter.report(1, {"has space": 2.0})
    with pytest.raises(ValueError, match="step: must be >= 0, got -1"):
        reporter.report(-1, {"loss": 1.0})
    with pytest.raises(ValueError, match="at most 64 metrics"):
        reporter.report(2, {"m%d" % i: i for i in range(65)})
    assert reporter.flush(timeout=10)
    # The refused call took nothing down with it.
    assert [(r.step, r.metrics) for r in client.list_reports("names")] == [
        (1, {"loss": 1.0})]
    reporter.close()


def test_reporter_drops_refused_reports_with_one_warning(client):
    client.create("gone", COSINE)
    reporter = anneal.MetricReporter(client, "gone")
    reporter.report(0, {"loss": 1.0})
    assert reporter.flush(timeout=10)
    client.delete("gone")
    with pytest.warns(RuntimeWarning, match="refused") as caught:
        reporter.report(1, {"loss": 2.0})
        reporter.report(2, {"loss": 3.0})
        assert reporter.flush(timeout=10)
    refused = [w for w in caught if "refused" in str(w.message)]
    assert len(refused) == 1
    assert "schedules/gone: not found" in str(refused[0].message)
    assert reporter.rejected == 2 and reporter.sent == 1
    reporter.close()


def test_reporter_close_is_bounded_and_idempotent(server, client):
    client.create("c", COSINE)
    reporter = anneal.MetricReporter(client, "c", backoff=FAST, rpc_timeout=1)
    reporter.report(0, {"loss": 1.0})
    assert reporter.flush(timeout=10)
    assert server.stop() == 0
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for step in range(1, 6):
            reporter.report(step, {"loss": 1.0})
        start = time.monotonic()
        reporter.close(timeout=0.5)
        first = time.monotonic() - start
        start = time.monotonic()
        reporter.close(timeout=0.5)
        second = time.monotonic() - start
    assert first < 0.5 + 1 + 1 + 1      # flush, in-flight deadline, join
    assert second < 0.05                # nothing left to do
    assert reporter.dropped == 5 and reporter.sent == 1
    assert reporter.pending == 0
    unsent = [w for w in caught if "were not sent" in str(w.message)]
    assert len(unsent) == 1 and "5 metric report(s)" in str(unsent[0].message)
    with pytest.raises(RuntimeError, match="closed"):
        reporter.report(9, {"loss": 1.0})
    server.start(same_port=True)


def test_scheduler_reports_at_the_current_step(client):
    torch = pytest.importorskip("torch")
    from anneal.torch import AnnealLR
    client.create("train", COSINE)
    param = torch.nn.Parameter(torch.ones(2))
    opt = torch.optim.SGD([param], lr=0.1, momentum=0.9)
    sched = AnnealLR(opt, "train", client=client, window=16)
    for t in range(25):
        loss = (param ** 2).sum()
        opt.zero_grad()
        loss.backward()
        sched.report(loss=loss.detach(), lr=opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    sched.report({"val_loss": 0.5}, step=10)
    sched.close()                       # sends what is queued
    sched.close()                       # once only
    reports = {r.step: r.metrics for r in client.list_reports("train")}
    assert sorted(reports) == list(range(25))
    served = list(client.evaluate_range("train", 0, 25, inspect_only=True).lr)
    assert [reports[t]["lr"] for t in range(25)] == served
    assert reports[10]["val_loss"] == 0.5 and "loss" in reports[10]
    # 26 reports, one call each unless the last merged into a queued step 10.
    assert sched.reporter.sent in (25, 26)
    assert sched.reporter.dropped == 0 and sched.reporter.rejected == 0
