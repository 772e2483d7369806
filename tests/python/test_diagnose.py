"""Diagnose from real, short training runs on sklearn's digits with a small
torch MLP, against the real server (the conftest fixtures):

- SGDR with a deliberately too-large max_lr, reporting train/val loss and
  max_curvature (the largest Hessian eigenvalue, by power iteration on
  Hessian-vector products): the stability and divergence findings appear;
- an LR range test (annealctl lr-range-test create / suggest): the suggested
  max_lr is sensible, below where the loss diverged, and a one-cycle run
  with it (suggest --write) trains the model.

No timed assertions; each run is a few hundred small steps.
"""

from __future__ import annotations

import json
import math
import subprocess

import grpc
import pytest

from conftest import BUILD_DIR

torch = pytest.importorskip("torch")
datasets = pytest.importorskip("sklearn.datasets")

from anneal.v1 import service_pb2, service_pb2_grpc  # noqa: E402


def digits():
    x, y = datasets.load_digits(return_X_y=True)
    x = torch.tensor(x / 16.0, dtype=torch.float32)
    y = torch.tensor(y, dtype=torch.long)
    g = torch.Generator().manual_seed(0)
    perm = torch.randperm(len(x), generator=g)
    x, y = x[perm], y[perm]
    return (x[:1400], y[:1400]), (x[1400:], y[1400:])


def mlp():
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Linear(64, 64), torch.nn.Tanh(),
                               torch.nn.Linear(64, 10))


def max_curvature(model, x, y, iters=20):
    """The largest Hessian eigenvalue of the loss at (x, y), by power
    iteration on Hessian-vector products."""
    params = [p for p in model.parameters()]
    loss = torch.nn.functional.cross_entropy(model(x), y)
    grads = torch.autograd.grad(loss, params, create_graph=True)
    v = [torch.randn_like(p) for p in params]
    eig = 0.0
    for _ in range(iters):
        norm = math.sqrt(sum(float((t * t).sum()) for t in v))
        v = [t / norm for t in v]
        hv = torch.autograd.grad(grads, params, grad_outputs=v,
                                 retain_graph=True)
        eig = sum(float((a * b).sum()) for a, b in zip(hv, v))
        v = [t.detach() for t in hv]
    return abs(eig)


def stub(server):
    return service_pb2_grpc.ScheduleServiceStub(
        grpc.insecure_channel(server.address))


def diagnose(server, name, **kw):
    return stub(server).Diagnose(
        service_pb2.DiagnoseRequest(name="schedules/" + name, **kw),
        timeout=60)


def codes(response):
    return {f.code: f for f in response.findings}


def train(client, name, steps, report_every=1, curvature=False, batch=64):
    """SGD on digits with the schedule's LR at every step; reports loss,
    val_loss every `report_every` steps and, with `curvature`, max_curvature
    at step 0 (the sharpness where training starts: once a run has blown up,
    saturated units make the measured curvature meaningless). Returns the
    last val loss."""
    (xt, yt), (xv, yv) = digits()
    model = mlp()
    opt = torch.optim.SGD(model.parameters(), lr=0.0)
    g = torch.Generator().manual_seed(1)
    val = float("nan")
    for step in range(steps):
        lr = client.evaluate(name, step).lr
        for group in opt.param_groups:
            group["lr"] = lr
        idx = torch.randint(0, len(xt), (batch,), generator=g)
        loss = torch.nn.functional.cross_entropy(model(xt[idx]), yt[idx])
        opt.zero_grad()
        loss.backward()
        opt.step()
        metrics = {"loss": float(loss)}
        if step % report_every == 0:
            with torch.no_grad():
                val = float(torch.nn.functional.cross_entropy(model(xv), yv))
            metrics["val_loss"] = val
        if curvature and step == 0:
            metrics["max_curvature"] = max_curvature(model, xt[:256], yt[:256])
        client.report(name, step, metrics)
    return val


def annealctl(server, *args):
    return subprocess.run(
        [str(BUILD_DIR / "bin" / "annealctl"), "--server", server.address,
         *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        timeout=60)


def test_too_large_max_lr_is_unstable_and_diverges(server, client):
    client.create("hot", {"max_lr": 30.0,
                          "warm_restarts": {"period": 40}})
    train(client, "hot", 120, report_every=5, curvature=True)
    r = diagnose(server, "hot")
    found = codes(r)
    assert r.training_metric == "loss"
    assert r.validation_metric == "val_loss"
    assert "STABILITY_UNSTABLE" in found, [f.code for f in r.findings]
    unstable = found["STABILITY_UNSTABLE"]
    assert unstable.severity == unstable.ERROR
    assert 0 < unstable.suggested_max_lr < 30.0
    assert any(c.startswith("DIVERGENCE_") and c != "DIVERGENCE_NONE"
               for c in found), [f.code for f in r.findings]
    assert r.findings[0].severity == unstable.ERROR
    # The response is JSON-clean: no NaN or infinity as a number.
    from google.protobuf import json_format
    text = json_format.MessageToJson(r)
    json.loads(text)
    assert "Infinity" not in text and '"value": "NaN"' not in text
    # annealctl shows the same findings.
    out = annealctl(server, "diagnose", "hot")
    assert out.returncode == 0, out.stderr
    assert "ERROR STABILITY_UNSTABLE" in out.stdout


def test_lr_range_test_on_digits_suggests_a_sensible_max_lr(server, client):
    made = annealctl(server, "lr-range-test", "create", "sweep",
                     "--min-lr", "1e-4", "--max-lr", "100", "--steps", "200")
    assert made.returncode == 0, made.stderr
    sched = client.get("sweep")
    assert sched.labels["anneal.dev/lr-range-test"] == "true"
    train(client, "sweep", 200, report_every=10**9)
    r = diagnose(server, "sweep")
    assert r.lr_range_test
    (f,) = r.findings
    assert f.code == "LR_RANGE_TEST", f.summary
    evidence = {e.name: e for e in f.evidence}
    assert 1e-3 < f.suggested_max_lr < 20, f.summary
    if evidence["diverged"].value:
        assert f.suggested_max_lr < evidence["divergence_lr"].value

    out = annealctl(server, "lr-range-test", "suggest", "sweep",
                    "--write", "tuned", "--steps", "150")
    assert out.returncode == 0, out.stderr
    assert "created schedules/tuned" in out.stdout
    tuned = client.get("tuned")
    assert tuned.spec.max_lr == f.suggested_max_lr
    # The suggestion trains: a one-cycle run with it beats chance (ln 10)
    # by far on the held-out digits.
    final_val = train(client, "tuned", 150, report_every=10)
    assert final_val < 0.5 * math.log(10), final_val
