"""What a user porting from a PyTorch scheduler gets with AnnealLR's
defaults, weight for weight on a small regression (SGD, momentum 0.9), and
what the porting table in docs/python-client.md says to pass otherwise."""

from __future__ import annotations

import warnings

import pytest

torch = pytest.importorskip("torch")
from anneal.torch import AnnealLR  # noqa: E402
from torch.optim import lr_scheduler  # noqa: E402

STEPS = 300


def _train(max_lr, make_scheduler):
    """Final weights of a linear regression trained STEPS steps."""
    torch.manual_seed(0)
    model = torch.nn.Linear(8, 1)
    gen = torch.Generator().manual_seed(1)
    x = torch.randn(64, 8, generator=gen)
    y = x @ torch.randn(8, 1, generator=gen) + 0.1
    opt = torch.optim.SGD(model.parameters(), lr=max_lr, momentum=0.9)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # PyTorch's step-order warning
        sched = make_scheduler(opt)
    for step in range(STEPS):
        batch = slice((step * 8) % 64, (step * 8) % 64 + 8)
        loss = torch.nn.functional.mse_loss(model(x[batch]), y[batch])
        loss.backward()
        opt.step()
        opt.zero_grad()
        sched.step()
    if isinstance(sched, AnnealLR):
        sched.close()
    return torch.cat([p.detach().flatten() for p in model.parameters()])


def test_cyclic_defaults_equal_cycliclr(client):
    """CyclicLR never resets momentum; AnnealLR's default does not either
    for the cyclic family (its cycle starts are not SGDR restarts)."""
    client.create("clr", {"max_lr": 0.1, "min_lr": 0.001,
                          "cyclic": {"step_size_up": 5}})
    torch_w = _train(0.1, lambda o: lr_scheduler.CyclicLR(
        o, base_lr=0.001, max_lr=0.1, step_size_up=5, cycle_momentum=False))
    default_w = _train(0.1, lambda o: AnnealLR(o, "clr", client=client))
    # CyclicLR's cycle position is floating point: a few ulps per LR.
    assert torch.allclose(default_w, torch_w, rtol=1e-9, atol=1e-12)
    reset_w = _train(0.1, lambda o: AnnealLR(o, "clr", client=client,
                                             reset_momentum=True))
    assert (reset_w - torch_w).abs().max() > 1e-4  # the test can tell


def test_one_cycle_defaults_equal_onecyclelr_bit_for_bit(client):
    client.create("oc", {"max_lr": 0.1, "one_cycle": {"total_steps": STEPS},
                         "momentum": {"base": 0.85, "max": 0.95}})
    torch_w = _train(0.1, lambda o: lr_scheduler.OneCycleLR(
        o, max_lr=0.1, total_steps=STEPS))
    default_w = _train(0.1, lambda o: AnnealLR(o, "oc", client=client))
    assert torch.equal(default_w, torch_w)


def test_warm_restarts_reset_momentum_unless_told(client):
    """SGDR's default resets momentum at restarts (the seed text); the
    porting table's reset_momentum=False gives CosineAnnealingWarmRestarts
    bit for bit."""
    client.create("sgdr", {"max_lr": 0.1,
                           "warm_restarts": {"period": 10, "period_mult": 2}})
    torch_w = _train(0.1, lambda o: lr_scheduler.CosineAnnealingWarmRestarts(
        o, T_0=10, T_mult=2))
    ported_w = _train(0.1, lambda o: AnnealLR(o, "sgdr", client=client,
                                              reset_momentum=False))
    assert torch.equal(ported_w, torch_w)
    default_w = _train(0.1, lambda o: AnnealLR(o, "sgdr", client=client))
    assert (default_w - torch_w).abs().max() > 1e-4
