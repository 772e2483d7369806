"""anneal.adam.ExactAdam against a hand-written Adam with a time-varying
beta1, fed the schedule annealctl evaluates (the engine's values, bit for
bit as the server serves them), and with AnnealLR against a real server."""

from __future__ import annotations

import csv
import io
import json
import math
import subprocess
import warnings
from typing import Dict, List

import pytest
import torch

from conftest import BUILD_DIR

from anneal.adam import BETA1_PRODUCT, ExactAdam, ExactBiasCorrection

SGDR = {"max_lr": 1e-2, "min_lr": 1e-4,
        "warm_restarts": {"period": 10, "period_mult": 2}}


def spec_with(restarts: bool) -> Dict:
    momentum = {"base": 0.85, "max": 0.99}
    if restarts:
        momentum["restart_bias_correction"] = True
    return dict(SGDR, momentum=momentum)


def preview(spec: Dict, steps: int, tmp_path) -> List[Dict[str, str]]:
    path = tmp_path / "spec.json"
    path.write_text(json.dumps(spec))
    done = subprocess.run(
        [str(BUILD_DIR / "bin" / "annealctl"), "preview", "-f", str(path),
         "--steps", str(steps), "-o", "csv"],
        check=True, stdout=subprocess.PIPE, text=True)
    return list(csv.DictReader(io.StringIO(done.stdout)))


def grad_of(p: torch.Tensor, step: int) -> torch.Tensor:
    """A gradient that changes with the step (a quadratic plus a drift)."""
    return 2 * p * torch.arange(1, p.numel() + 1, dtype=p.dtype) + math.sin(
        0.1 * step)


def hand_written(rows, reset_at_restart: bool, dtype=torch.float64):
    """Adam written out: m_k = b_k m + (1 - b_k) g, the first moment divided
    by 1 - prod b_i over the steps since exp_avg was last zeroed."""
    p = torch.linspace(-1, 1, 5, dtype=dtype)
    m = torch.zeros_like(p)
    v = torch.zeros_like(p)
    beta2, eps = 0.999, 1e-8
    product = 1.0
    for k, row in enumerate(rows, start=1):
        lr, b1 = float(row["lr"]), float(row["momentum"])
        if reset_at_restart and row["restart"] == "1":
            m.zero_()
            product = 1.0
        product *= b1
        g = grad_of(p, k)
        m = m * b1 + g * (1 - b1)
        v = v * beta2 + g * g * (1 - beta2)
        m_hat_scale = lr / (1 - product)
        denom = (v.sqrt() / math.sqrt(1 - beta2 ** k)) + eps
        p = p - m_hat_scale * (m / denom)
    return p


def exact_adam(rows, reset_at_restart: bool, dtype=torch.float64):
    """ExactAdam driven as AnnealLR drives it: lr, betas[0] and
    beta1_bias_correction set before each update, exp_avg zeroed on
    restart steps when asked."""
    p = torch.nn.Parameter(torch.linspace(-1, 1, 5, dtype=dtype))
    opt = ExactAdam([p], lr=float(rows[0]["lr"]), betas=(0.9, 0.999))
    for k, row in enumerate(rows, start=1):
        group = opt.param_groups[0]
        group["lr"] = float(row["lr"])
        group["betas"] = (float(row["momentum"]), 0.999)
        group["beta1_bias_correction"] = float(row["beta1_bias_correction"])
        if reset_at_restart and row["restart"] == "1" and opt.state[p]:
            opt.state[p]["exp_avg"].zero_()
        p.grad = grad_of(p.detach(), k)
        opt.step()
    return p.detach()


def stock_adam_wrapped(rows, reset_at_restart: bool, served: bool = True,
                       dtype=torch.float64):
    """torch.optim.Adam inside ExactBiasCorrection, driven as AnnealLR
    drives it (exp_avg zeroed and the product reset on restart steps when
    asked); without `served`, no beta1_bias_correction is set."""
    p = torch.nn.Parameter(torch.linspace(-1, 1, 5, dtype=dtype))
    stock = torch.optim.Adam([p], lr=float(rows[0]["lr"]), betas=(0.9, 0.999))
    opt = ExactBiasCorrection(stock)
    for k, row in enumerate(rows, start=1):
        group = opt.param_groups[0]
        group["lr"] = float(row["lr"])
        group["betas"] = (float(row["momentum"]), 0.999)
        if served:
            group["beta1_bias_correction"] = float(
                row["beta1_bias_correction"])
        if reset_at_restart and row["restart"] == "1" and opt.state[p]:
            opt.state[p]["exp_avg"].zero_()
            opt.state[p][BETA1_PRODUCT] = 1.0
        p.grad = grad_of(p.detach(), k)
        opt.step()
        assert group["lr"] == float(row["lr"])  # put back after the step
    return p.detach()


@pytest.mark.parametrize("restarts", [False, True])
def test_stock_adam_with_the_wrapper_equals_hand_written_adam(tmp_path,
                                                              restarts):
    rows = preview(spec_with(restarts), 400, tmp_path)
    want = hand_written(rows, reset_at_restart=restarts)
    got = stock_adam_wrapped(rows, reset_at_restart=restarts)
    assert torch.allclose(got, want, rtol=1e-13, atol=1e-15), (got, want)
    # Unwrapped, stock Adam is measurably off.
    assert not torch.allclose(
        plain_stock_adam(rows, reset_at_restart=restarts), want, rtol=1e-6)


def plain_stock_adam(rows, reset_at_restart: bool, dtype=torch.float64):
    p = torch.nn.Parameter(torch.linspace(-1, 1, 5, dtype=dtype))
    opt = torch.optim.Adam([p], lr=float(rows[0]["lr"]), betas=(0.9, 0.999))
    for k, row in enumerate(rows, start=1):
        opt.param_groups[0]["lr"] = float(row["lr"])
        opt.param_groups[0]["betas"] = (float(row["momentum"]), 0.999)
        if reset_at_restart and row["restart"] == "1" and opt.state[p]:
            opt.state[p]["exp_avg"].zero_()
        p.grad = grad_of(p.detach(), k)
        opt.step()
    return p.detach()


def test_a_constant_beta1_product_restarts_with_exp_avg(tmp_path):
    """No momentum block: nothing is served, the wrapper's own product
    restarts where exp_avg is zeroed (as AnnealLR resets it)."""
    rows = preview(SGDR, 300, tmp_path)
    for row in rows:
        row["momentum"] = "0.9"
    want = hand_written(rows, reset_at_restart=True)
    got = stock_adam_wrapped(rows, reset_at_restart=True, served=False)
    assert torch.allclose(got, want, rtol=1e-13, atol=1e-15), (got, want)


def test_the_wrapper_refuses_what_it_cannot_correct():
    a = torch.nn.Parameter(torch.ones(2))
    with pytest.raises(ValueError, match=r"param_groups\[0\]: .*betas"):
        ExactBiasCorrection(torch.optim.SGD([a], lr=0.1))
    b = torch.nn.Parameter(torch.ones(2))
    opt = ExactBiasCorrection(torch.optim.Adam([a, b], lr=0.1))
    a.grad = torch.ones(2)
    opt.step()
    a.grad, b.grad = torch.ones(2), torch.ones(2)
    with pytest.raises(RuntimeError, match="different numbers of steps"):
        opt.step()
    assert opt.param_groups[0]["lr"] == 0.1  # put back after the refusal


@pytest.mark.parametrize("restarts", [False, True])
def test_exact_adam_equals_hand_written_adam(tmp_path, restarts):
    rows = preview(spec_with(restarts), 400, tmp_path)
    want = hand_written(rows, reset_at_restart=restarts)
    got = exact_adam(rows, reset_at_restart=restarts)
    assert torch.allclose(got, want, rtol=1e-13, atol=1e-15), (got, want)


def test_served_correction_at_a_restart(tmp_path):
    """SGDR m=2, momentum {0.85, 0.99}: t=630 starts cycle 5. With the product
    restarting the first update after the reset gets 1 - 0.85, not 1.0."""
    kept = preview(spec_with(False), 640, tmp_path)
    reset = preview(spec_with(True), 640, tmp_path)
    assert reset[630]["restart"] == "1"
    assert float(kept[630]["beta1_bias_correction"]) == 1.0
    assert float(reset[630]["beta1_bias_correction"]) == pytest.approx(0.15)


def test_a_mismatched_correction_is_what_exact_adam_fixes(tmp_path):
    """Zeroing exp_avg while the product runs on (the old behaviour) makes
    the first updates of each cycle too small: here the parameters move
    measurably differently from the hand-written reference."""
    rows = preview(spec_with(False), 200, tmp_path)
    want = hand_written(rows, reset_at_restart=True)
    got = exact_adam(rows, reset_at_restart=True)
    assert not torch.allclose(got, want, rtol=1e-6)


def test_constant_beta1_equals_torch_adam():
    torch.manual_seed(0)
    a = torch.nn.Parameter(torch.randn(7, dtype=torch.float64))
    b = torch.nn.Parameter(a.detach().clone())
    stock = torch.optim.Adam([a], lr=1e-2, betas=(0.9, 0.99),
                             weight_decay=1e-3)
    exact = ExactAdam([b], lr=1e-2, betas=(0.9, 0.99), weight_decay=1e-3)
    for k in range(300):
        for p, opt in ((a, stock), (b, exact)):
            p.grad = grad_of(p.detach(), k)
            opt.step()
    assert torch.allclose(a, b, rtol=1e-12, atol=1e-14)


def test_anneal_lr_sets_the_served_correction(client):
    from anneal.torch import AnnealLR
    client.create("exact-adam", spec_with(True))
    p = torch.nn.Parameter(torch.ones(3, dtype=torch.float64))
    opt = ExactAdam([p], lr=1e-2)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        s = AnnealLR(opt, "exact-adam", client=client, reset_exp_avg=True)
    served = client.evaluate_range("exact-adam", 0, 40)
    for t in range(40):
        group = opt.param_groups[0]
        assert group["betas"][0] == served.momentum[t]
        assert group["beta1_bias_correction"] == served.beta1_bias_correction[t]
        (p * p).sum().backward()
        opt.step()
        opt.zero_grad()
        s.step()
    s.close()


def test_anneal_lr_warns_when_the_reset_and_the_correction_disagree(client):
    from anneal.torch import AnnealLR
    client.create("kept", spec_with(False))
    opt = ExactAdam([torch.nn.Parameter(torch.ones(2))], lr=1e-2)
    with pytest.warns(UserWarning, match="restart_bias_correction=false"):
        s = AnnealLR(opt, "kept", client=client, reset_exp_avg=True)
    s.close()


@pytest.mark.parametrize("wrapped", [False, True])
def test_anneal_lr_warns_when_stock_adam_cannot_restart_its_correction(
        client, wrapped):
    """Constant beta1, exp_avg zeroed at restarts: stock Adam alone keeps
    dividing by 1 - beta1**k (warned at the first restart); wrapped, its
    product restarts and nothing is warned."""
    from anneal.torch import AnnealLR
    client.create("stock-reset-%d" % wrapped, dict(
        SGDR, warm_restarts={"period": 5}))
    p = torch.nn.Parameter(torch.ones(3, dtype=torch.float64))
    opt = torch.optim.Adam([p], lr=1e-2)
    step = ExactBiasCorrection(opt).step if wrapped else opt.step
    s = AnnealLR(opt, "stock-reset-%d" % wrapped, client=client,
                 reset_exp_avg=True)
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        for _ in range(12):
            (p * p).sum().backward()
            step()
            opt.zero_grad()
            s.step()
    s.close()
    stock = [w for w in seen if "ExactBiasCorrection" in str(w.message)]
    assert len(stock) == (0 if wrapped else 1), [str(w.message) for w in seen]
    if wrapped:
        assert opt.state[p][BETA1_PRODUCT] == pytest.approx(0.9 ** 2)
