"""anneal.curvature: the top Hessian eigenvalue by power iteration on
Hessian-vector products, checked against Hessians known exactly.

* A quadratic 0.5 x^T A x with A = Q diag(eigs) Q^T (known spectrum): the
  estimate equals the top eigenvalue to 1e-8 relative, and the residual
  bounds the distance to the spectrum (Krylov-Weinstein).
* A dominant negative eigenvalue (a saddle): the largest algebraic one is
  found, not the largest in magnitude.
* A tiny tanh MLP in float64: against torch.autograd.functional.hessian and
  eigvalsh of the full Hessian.
* Warm start: once converged, a re-estimate takes one or two products.
* Reports: max_curvature reaches the server through AnnealLR.report and
  through a MetricReporter, at the steps it was due; the monitor does not
  change training (same weights as without it).
* Bad arguments are refused naming the argument; a NaN loss raises (or
  warns and reports nothing).
"""

from __future__ import annotations

import math
import os
import warnings

import pytest

torch = pytest.importorskip("torch")
anneal = pytest.importorskip("anneal")
from anneal.curvature import CurvatureMonitor, top_eigenvalue  # noqa: E402
from anneal.torch import AnnealLR  # noqa: E402


def quadratic_matrix(eigs, seed=0):
    g = torch.Generator().manual_seed(seed)
    q, _ = torch.linalg.qr(torch.randn(len(eigs), len(eigs), generator=g,
                                       dtype=torch.float64))
    return q @ torch.diag(torch.tensor(eigs, dtype=torch.float64)) @ q.T


def test_quadratic_with_known_spectrum():
    # Top 10, next 7: the error shrinks like 0.7^(2k) per iteration.
    eigs = [10.0, 7.0] + [0.5 + 0.1 * i for i in range(48)]
    a = quadratic_matrix(eigs)
    x = torch.randn(50, dtype=torch.float64, requires_grad=True,
                    generator=torch.Generator().manual_seed(1))
    loss = 0.5 * x @ a @ x
    lam, v, residual = top_eigenvalue(loss, [x], iters=200, tol=1e-13)
    assert abs(lam - 10.0) <= 1e-8 * 10.0
    # Some eigenvalue lies within the residual of the estimate (symmetric H).
    assert min(abs(lam - e) for e in eigs) <= residual + 1e-12
    assert abs(float(v[0].norm()) - 1.0) < 1e-12
    # Few iterations: a coarse but honest answer (residual bounds it).
    lam5, _, r5 = top_eigenvalue(loss, [x], iters=5, tol=0.0,
                                 generator=torch.Generator().manual_seed(2))
    assert lam5 <= 10.0 + 1e-9
    assert min(abs(lam5 - e) for e in eigs) <= r5 + 1e-12


def test_dominant_negative_eigenvalue_gives_the_top_one():
    eigs = [-12.0, 5.0, 3.0] + [1.0] * 7
    a = quadratic_matrix(eigs, seed=3)
    x = torch.zeros(10, dtype=torch.float64, requires_grad=True)
    lam, _, _ = top_eigenvalue(0.5 * x @ a @ x, [x], iters=300, tol=1e-13)
    assert abs(lam - 5.0) <= 1e-7 * 5.0


def tiny_mlp(flat, x, y):
    """A 3-4-1 tanh MLP whose 21 weights are the vector `flat`."""
    w1 = flat[:12].reshape(4, 3)
    b1 = flat[12:16]
    w2 = flat[16:20].reshape(1, 4)
    b2 = flat[20:21]
    out = torch.tanh(x @ w1.T + b1) @ w2.T + b2
    return ((out.squeeze(1) - y) ** 2).mean()


def test_tiny_mlp_against_the_full_hessian():
    g = torch.Generator().manual_seed(4)
    x = torch.randn(32, 3, generator=g, dtype=torch.float64)
    y = torch.sin(x.sum(1))
    flat = torch.randn(21, generator=g, dtype=torch.float64)
    h = torch.autograd.functional.hessian(lambda w: tiny_mlp(w, x, y), flat)
    eigs = torch.linalg.eigvalsh(h)
    top = float(eigs[-1])

    # The same weights as separate parameter tensors (as a model has them).
    w = flat.clone().requires_grad_(True)
    parts = [w[:12].detach().clone().reshape(4, 3).requires_grad_(),
             w[12:16].detach().clone().requires_grad_(),
             w[16:20].detach().clone().reshape(1, 4).requires_grad_(),
             w[20:21].detach().clone().requires_grad_()]
    loss = tiny_mlp(torch.cat([p.reshape(-1) for p in parts]), x, y)
    lam, _, residual = top_eigenvalue(loss, parts, iters=500, tol=1e-14)
    assert abs(lam - top) <= 1e-6 * abs(top), (lam, top, eigs[-3:])
    assert residual < 1e-4 * abs(top)

    # The monitor's default budget (20 products cold): within 1%.
    monitor = CurvatureMonitor(parts)
    est = monitor.estimate(tiny_mlp(torch.cat([p.reshape(-1) for p in parts]),
                                    x, y))
    assert abs(est - top) <= 0.01 * abs(top), (est, top)
    assert monitor.products <= 20
    print("tiny MLP: eigvalsh top %.6f; 500-product estimate %.6f (rel err "
          "%.1e); monitor's cold estimate %.6f (rel err %.1e, %d products, "
          "residual %.2e)" % (top, lam, abs(lam - top) / top, est,
                              abs(est - top) / top, monitor.products,
                              monitor.residual))


def test_warm_start_needs_few_products():
    eigs = [4.0, 2.0] + [1.0] * 30
    a = quadratic_matrix(eigs, seed=5)
    x = torch.randn(32, dtype=torch.float64, requires_grad=True)
    monitor = CurvatureMonitor([x], iters=3, first_iters=100, tol=1e-10)
    first = monitor.estimate(0.5 * x @ a @ x)
    assert abs(first - 4.0) < 1e-8
    cold = monitor.products
    second = monitor.estimate(0.5 * x @ a @ x)
    assert abs(second - 4.0) < 1e-8
    assert monitor.products <= 2 < cold
    assert monitor.estimates == 2


def _quadratic_model(eigs):
    a = quadratic_matrix(eigs, seed=6).float()
    model = torch.nn.Linear(len(eigs), 1, bias=False)
    torch.nn.init.constant_(model.weight, 1.0)

    def loss_of(m):
        w = m.weight.squeeze(0)
        return 0.5 * w @ a @ w
    return model, loss_of


def _train(client, name, steps, with_monitor):
    model, loss_of = _quadratic_model([3.0, 1.0, 0.5, 0.25])
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    sched = AnnealLR(opt, name, client=client)
    monitor = (CurvatureMonitor(model.parameters(), reporter=sched, every=5,
                                first_iters=50, iters=10, tol=1e-6)
               if with_monitor else None)
    got = {}
    for _ in range(steps):
        loss = loss_of(model)
        if monitor is not None:
            est = monitor.maybe_estimate(loss)
            if est is not None:
                got[sched.last_epoch] = est
        sched.report(loss=loss.detach())
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
    sched.close()
    return model, got


def test_reports_reach_the_server_and_training_is_unchanged(client):
    spec = {"max_lr": 0.1, "cosine": {"period": 40}}
    client.create("curv", spec)
    client.create("plain", spec)
    model, got = _train(client, "curv", 22, True)
    plain, _ = _train(client, "plain", 22, False)
    assert torch.equal(model.weight, plain.weight)
    assert sorted(got) == [0, 5, 10, 15, 20]
    for est in got.values():
        assert abs(est - 3.0) < 1e-4     # float32 model, quadratic: exact H
    reports = list(client.list_reports("curv", metrics=["max_curvature"]))
    assert {r.step: r.metrics["max_curvature"] for r in reports} == got
    assert len(list(client.list_reports("curv", metrics=["loss"]))) == 22


def test_metric_reporter_path(client):
    client.create("curv-mr", {"max_lr": 0.1, "constant": {}})
    x = torch.ones(4, dtype=torch.float64, requires_grad=True)
    a = quadratic_matrix([2.0, 1.0, 1.0, 0.5], seed=7)
    reporter = anneal.MetricReporter(client, "curv-mr")
    monitor = CurvatureMonitor([x], reporter=reporter, every=3,
                               first_iters=100, tol=1e-12)
    with pytest.raises(ValueError, match="step: required"):
        monitor.maybe_estimate(0.5 * x @ a @ x)
    for t in range(7):
        monitor.maybe_estimate(lambda: 0.5 * x @ a @ x, step=t)
    reporter.close()
    reports = list(client.list_reports("curv-mr"))
    assert [r.step for r in reports] == [0, 3, 6]
    assert all(abs(r.metrics["max_curvature"] - 2.0) < 1e-9 for r in reports)


def test_bad_arguments_and_nonfinite_losses():
    x = torch.ones(3, requires_grad=True)
    with pytest.raises(ValueError, match=r"every: must be an integer >= 1, got 0"):
        CurvatureMonitor([x], every=0)
    with pytest.raises(ValueError, match=r"iters: must be an integer >= 1, got -1"):
        CurvatureMonitor([x], iters=-1)
    with pytest.raises(ValueError, match=r"params: must hold at least one"):
        CurvatureMonitor([torch.ones(3)])
    with pytest.raises(ValueError, match=r"nonfinite: must be"):
        CurvatureMonitor([x], nonfinite="ignore")
    with pytest.raises(ValueError, match=r"metrics\[\"9x\"\]"):
        CurvatureMonitor([x], reporter=anneal.MetricReporter.__new__(
            anneal.MetricReporter), metric="9x")
    with pytest.raises(ValueError, match=r"loss: must be a scalar tensor"):
        top_eigenvalue(x * 2, [x])
    loss = (x ** 3).sum()
    loss.backward()
    with pytest.raises(ValueError, match=r"loss: its graph was already freed"):
        top_eigenvalue(loss, [x])
    bad = (x * float("nan")).sum()
    with pytest.raises(FloatingPointError, match=r"loss: must be finite"):
        CurvatureMonitor([x]).estimate(bad)
    m = CurvatureMonitor([x], nonfinite="warn")
    with warnings.catch_warnings(record=True) as w:
        warnings.simplefilter("always")
        assert math.isnan(m.estimate((x * float("inf")).sum() ** 2))
    assert any("no curvature estimate" in str(e.message) for e in w)
    assert m.value is None and m.estimates == 0
    # The curvature of a loss linear in x is 0.
    assert CurvatureMonitor([x]).estimate((3 * x).sum()) == 0.0


@pytest.mark.skipif(not os.environ.get("ANNEAL_CURVATURE_DIGITS"),
                    reason="about 35 s (four full 2410x2410 Hessians); set "
                    "ANNEAL_CURVATURE_DIGITS=1 to run")
def test_digits_mlp_against_the_full_hessian():
    """The figures of docs/adaptive.md: the digits MLP (float64, 2410
    weights), SGD momentum 0.9 at lr 0.1, the monitor's defaults (every 100
    steps, 20 products cold, at most 10 warm), against eigvalsh of the full
    minibatch Hessian at steps 0, 100, 200 and 300."""
    import time
    from conftest import load_example
    ex = load_example("digits_sgdr")
    torch.set_num_threads(1)
    x, y, _, _ = ex.load_data()
    x = x.double()
    cfg = ex.Config()
    model = ex.make_model(cfg).double()
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    loss_fn = torch.nn.CrossEntropyLoss()
    params = list(model.parameters())
    shapes = [p.shape for p in params]

    def exact(idx):
        flat = torch.cat([p.detach().reshape(-1) for p in params])

        def f(w):
            parts, i = [], 0
            for s in shapes:
                parts.append(w[i:i + s.numel()].reshape(s))
                i += s.numel()
            h = torch.relu(x[idx] @ parts[0].T + parts[1])
            return loss_fn(h @ parts[2].T + parts[3], y[idx])
        h = torch.autograd.functional.hessian(f, flat)
        return float(torch.linalg.eigvalsh(h)[-1])

    monitor = CurvatureMonitor(params)
    timings = []
    for step in range(301):
        idx = ex.batch_indices(cfg, len(x), step)
        loss = loss_fn(model(x[idx]), y[idx])
        start = time.perf_counter()
        est = monitor.maybe_estimate(loss, step)
        if est is not None:
            timings.append(time.perf_counter() - start)
            top = exact(idx)
            print("digits step %d: eigvalsh %.5f, estimate %.5f, rel err "
                  "%.1e, %d products, %.1f ms" % (
                      step, top, est, abs(est - top) / top,
                      monitor.products, 1e3 * timings[-1]))
            assert est <= top * (1 + 1e-9)       # a Rayleigh quotient
            assert abs(est - top) <= 0.02 * top
        opt.zero_grad()
        loss.backward()
        opt.step()
