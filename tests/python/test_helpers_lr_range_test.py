"""anneal.lr_range_test.run: Leslie Smith's LR range test on a served
exponential sweep, with the digits MLP of python/examples/digits_sgdr.py
(scikit-learn's load_digits, 64-32-10, SGD with momentum 0.9, batches of
64).

The sweep is created here through the Python client with the spec that
`annealctl lr-range-test create NAME --min-lr A --max-lr B --steps N`
stands for: exponential growth from A, capped at B,
{max_lr: B, exponential_decay: {gamma: (B/A)^(1/(N-1)), start_lr: A}}.

* A sweep from 1e-3 to 100 over 100 steps: the loss falls, then diverges;
  the run stops there (smoothed loss > 4x its minimum) with fewer than 100
  steps; every step's LR is the served one, every step's loss reached the
  server as a report, and the model and optimizer are restored.
* A sweep that stays low runs all N steps.
* A NaN loss stops the run without an update made from it; an iterator of
  batches that runs out stops it; a list of batches is cycled.
* Bad arguments are refused, naming the argument, the rule and the value.
"""

from __future__ import annotations

import math

import pytest

torch = pytest.importorskip("torch")
anneal = pytest.importorskip("anneal")
from anneal import lr_range_test  # noqa: E402



def sweep(min_lr, max_lr, steps):
    """The exponential sweep spec (annealctl lr-range-test create)."""
    return {"max_lr": max_lr, "exponential_decay": {
        "gamma": (max_lr / min_lr) ** (1.0 / (steps - 1)),
        "start_lr": min_lr}}


@pytest.fixture(scope="module")
def data(ex):
    return ex.load_data()


def make_run(ex, data, steps=100):
    cfg = ex.Config()
    model = ex.make_model(cfg)
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    x, y = data[0], data[1]
    batches = [(x[idx], y[idx]) for idx in
               (ex.batch_indices(cfg, len(x), t) for t in range(steps))]
    return model, opt, torch.nn.CrossEntropyLoss(), batches


def test_sweep_stops_at_divergence_and_reports_every_step(client, ex, data):
    client.create("lrrt", sweep(1e-3, 100.0, 100))
    model, opt, loss_fn, batches = make_run(ex, data)
    before = [p.detach().clone() for p in model.parameters()]
    r = lr_range_test.run(model, opt, loss_fn, batches, schedule="lrrt",
                          steps=100, client=client)
    n = len(r.curve)
    assert r.stopped in (lr_range_test.STOP_DIVERGED,
                         lr_range_test.STOP_NONFINITE), r.stopped
    assert 20 < n < 100
    # The LRs are the served ones, bit for bit, and grow geometrically.
    served = client.evaluate_range("lrrt", 0, n, inspect_only=True)
    assert r.lrs == list(served.lr)
    assert r.lrs[0] == 1e-3
    assert all(b > a for a, b in zip(r.lrs, r.lrs[1:]))
    # It learned before it diverged.
    assert r.best_loss < 0.7 * r.losses[0]
    assert r.lrs[r.best_step] < r.lrs[-1]
    if r.stopped == lr_range_test.STOP_DIVERGED:
        assert r.smoothed[-1] > 4 * r.best_loss
        assert all(s <= 4 * r.best_loss for s in r.smoothed[:-1])
    # Every step's loss is on the server, at its step, exactly.
    reports = list(client.list_reports("lrrt", metrics=["loss"]))
    assert [x.step for x in reports] == list(range(n))
    got = [x.metrics["loss"] for x in reports]
    assert all(a == b or (math.isnan(a) and math.isnan(b))
               for a, b in zip(got, r.losses))
    # restore=True: the weights and the optimizer are as they were.
    for p, q in zip(model.parameters(), before):
        assert torch.equal(p, q)
    assert opt.state_dict()["state"] == {}
    assert opt.param_groups[0]["lr"] == 0.1
    assert "initial_lr" not in opt.param_groups[0]
    print("lr range test on digits: %d steps, stopped %s at lr %.3g; lowest "
          "smoothed loss %.4f at lr %.3g (step %d), first loss %.4f" %
          (n, r.stopped, r.lrs[-1], r.best_loss, r.lrs[r.best_step],
           r.best_step, r.losses[0]))

    # A second run on the same sweep warns that its reports would merge.
    with pytest.warns(UserWarning, match="already has 'loss' reports"):
        lr_range_test.run(model, opt, loss_fn, batches[:3], schedule="lrrt",
                          steps=3, client=client)


def test_low_sweep_runs_every_step(client, ex, data):
    client.create("lrrt-low", sweep(1e-3, 0.05, 30))
    model, opt, loss_fn, batches = make_run(ex, data, 30)
    opt.add_param_group({"params": [torch.nn.Parameter(torch.zeros(1))],
                         "lr": 0.2})   # twice group 0's LR
    r = lr_range_test.run(model, opt, loss_fn, batches, schedule="lrrt-low",
                          steps=30, client=client, restore=False)
    assert r.stopped is None and len(r.curve) == 30
    assert r.lrs[-1] == 0.05
    # Not restored: the groups hold the last LR, group 1 at twice group 0's.
    assert opt.param_groups[0]["lr"] == 0.05
    assert opt.param_groups[1]["lr"] == 0.1
    assert r.losses[-1] < r.losses[0]


def test_nan_loss_exhausted_batches_and_cycling(client, ex, data):
    client.create("lrrt-nan", sweep(1e-3, 0.01, 10))
    model, opt, loss_fn, batches = make_run(ex, data, 10)
    calls = []

    def nan_at_3(out, y):
        calls.append(1)
        loss = loss_fn(out, y)
        return loss * float("nan") if len(calls) == 4 else loss

    r = lr_range_test.run(model, opt, nan_at_3, batches, schedule="lrrt-nan",
                          steps=10, client=client, restore=False)
    assert r.stopped == lr_range_test.STOP_NONFINITE
    assert len(r.losses) == 4 and math.isnan(r.losses[3])
    assert all(torch.isfinite(p).all() for p in model.parameters())
    reports = list(client.list_reports("lrrt-nan"))
    assert [x.step for x in reports] == [0, 1, 2, 3]
    assert math.isnan(reports[3].metrics["loss"])

    client.create("lrrt-few", sweep(1e-3, 0.01, 10))
    r = lr_range_test.run(model, opt, loss_fn, iter(batches[:4]),
                          schedule="lrrt-few", steps=10, client=client)
    assert r.stopped == lr_range_test.STOP_EXHAUSTED and len(r.losses) == 4
    client.create("lrrt-cycle", sweep(1e-3, 0.01, 10))
    r = lr_range_test.run(model, opt, loss_fn, batches[:4],
                          schedule="lrrt-cycle", steps=10, client=client)
    assert r.stopped is None and len(r.losses) == 10
    assert r.losses[4] != r.losses[0]   # the same batch, a trained model


def test_bad_arguments(client, ex, data):
    model, opt, loss_fn, batches = make_run(ex, data, 2)
    run = lr_range_test.run

    def refused(match, **kw):
        args = dict(schedule="x", steps=5, client=client)
        args.update(kw)
        with pytest.raises(ValueError, match=match):
            run(kw.pop("model", model), kw.pop("optimizer", opt),
                kw.pop("loss_fn", loss_fn), kw.pop("batches", batches),
                **{k: v for k, v in args.items()
                   if k not in ("model", "optimizer", "loss_fn", "batches")})

    refused(r"steps: must be an integer >= 1, got 0", steps=0)
    refused(r"diverge_factor: must be a finite number > 1, got 1", diverge_factor=1)
    refused(r"smoothing: must be in \[0, 1\), got 1.0", smoothing=1.0)
    refused(r"schedule: must be a schedule id or name, got ''", schedule="")
    refused(r"model: must be a torch.nn.Module, got function", model=lambda x: x)
    refused(r"optimizer: must be a torch.optim.Optimizer", optimizer=object())
    refused(r"batches: must be iterable, got int", batches=3)
    refused(r'metrics\["9loss"\]', metric="9loss")
    client.create("lrrt-bad", sweep(1e-3, 0.01, 5))
    refused(r"loss_fn: must return a scalar tensor, got a tensor of shape",
            loss_fn=lambda out, y: out, schedule="lrrt-bad")
    refused(r"batches: each batch must be a pair", batches=[1, 2],
            schedule="lrrt-bad")
    with pytest.raises(anneal.NotFoundError):
        run(model, opt, loss_fn, batches, schedule="missing", steps=5,
            client=client)
