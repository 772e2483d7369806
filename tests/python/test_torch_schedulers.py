"""AnnealLR applies the same LR (and momentum) sequence as PyTorch's own
CosineAnnealingWarmRestarts, OneCycleLR and CyclicLR, step by step.

Both schedulers drive a real optimizer in the documented order
(optimizer.step(), then scheduler.step()), and param_groups[0] is compared
after every step, starting with the value set at construction (t = 0).

Exactness: the engine evaluates PyTorch's closed forms operation for
operation (anneal/engine/pytorch_reference_test.cc), so CosineAnnealingWarmRestarts
and OneCycleLR LRs and OneCycleLR momenta are compared bit for bit. CyclicLR
is compared with the C++ test's tolerance, |a - b| <= 1e-12 * max(|torch|,
scale) (scale max_lr / 1000, or 1 / 1000 for momenta): PyTorch computes the
cycle position in floating point as 1 + t/S - floor(1 + t/S), which is off
by about ulp(t/S), while anneal uses exact integer arithmetic, so the two
differ by a few ulps at some steps.
"""

from __future__ import annotations

import warnings

import pytest

torch = pytest.importorskip("torch")
anneal = pytest.importorskip("anneal")
from anneal.torch import AnnealLR  # noqa: E402
from torch.optim import lr_scheduler  # noqa: E402


def _opt(lr, adam=False, groups=None):
    params = [torch.nn.Parameter(torch.zeros(2))
              for _ in range(len(groups) if groups else 1)]
    if groups:
        spec = [{"params": [p], "lr": g} for p, g in zip(params, groups)]
    else:
        spec = params
    if adam:
        return torch.optim.Adam(spec, lr=lr)
    return torch.optim.SGD(spec, lr=lr, momentum=0.9)


def _m(group):
    return group["betas"][0] if "betas" in group else group["momentum"]


def _sequences(client, name, spec, make_torch, steps, *, adam=False,
               momentum=False, max_lr=None):
    """The (lr, momentum) of param_groups[0] at t = 0..steps-1, for anneal
    and for PyTorch."""
    client.create(name, spec)
    lr = max_lr if max_lr is not None else spec["max_lr"]
    a_opt, t_opt = _opt(lr, adam), _opt(lr, adam)
    a = AnnealLR(a_opt, name, client=client, window=64)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # PyTorch's step-order warning
        t = make_torch(t_opt)
    a_seq, t_seq = [], []
    for step in range(steps):
        if step > 0:
            a_opt.step(); a.step()
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                t_opt.step(); t.step()
        ga, gt = a_opt.param_groups[0], t_opt.param_groups[0]
        a_seq.append((ga["lr"], _m(ga) if momentum else None))
        t_seq.append((gt["lr"], _m(gt) if momentum else None))
        assert a.get_last_lr() == [ga["lr"]]
    a.close()
    return a_seq, t_seq


@pytest.mark.parametrize("t0,mult,eta_min,steps", [
    (10, 2, 0.0, 400),
    (10, 1, 1e-4, 300),
    (1, 3, 0.0, 400),   # restarts at 1, 4, 13, 40, 121, 364
    (7, 2, 0.001, 300),
])
def test_cosine_annealing_warm_restarts(client, t0, mult, eta_min, steps):
    spec = {"max_lr": 0.1, "warm_restarts": {"period": t0, "period_mult": mult}}
    if eta_min:
        spec["min_lr"] = eta_min
    a, t = _sequences(
        client, "cawr-%d-%d" % (t0, mult), spec,
        lambda o: lr_scheduler.CosineAnnealingWarmRestarts(
            o, T_0=t0, T_mult=mult, eta_min=eta_min), steps)
    assert a == t  # bit for bit


@pytest.mark.parametrize("adam,total,pct,anneal_strategy,three", [
    (False, 100, 0.3, "cos", False),
    (False, 257, 0.4, "linear", True),
    (True, 120, 0.25, "cos", False),  # betas[0] cycled
])
def test_one_cycle(client, adam, total, pct, anneal_strategy, three):
    spec = {"max_lr": 0.1, "one_cycle": {
        "total_steps": total, "pct_start": pct,
        "anneal": "COSINE" if anneal_strategy == "cos" else "LINEAR",
        "three_phase": three}, "momentum": {"base": 0.85, "max": 0.95}}
    a, t = _sequences(
        client, "oc-%d" % total, spec,
        lambda o: lr_scheduler.OneCycleLR(
            o, max_lr=0.1, total_steps=total, pct_start=pct,
            anneal_strategy=anneal_strategy, three_phase=three,
            base_momentum=0.85, max_momentum=0.95),
        total, adam=adam, momentum=True)  # PyTorch raises past total_steps
    assert a == t  # LR and momentum, bit for bit


def _close(a, b, scale):
    return abs(a - b) <= 1e-12 * max(abs(b), scale)


@pytest.mark.parametrize("mode,gamma,up,down", [
    ("triangular", 1.0, 5, None),
    ("triangular2", 1.0, 10, 20),
    ("exp_range", 0.999, 25, 25),
])
def test_cyclic_with_momentum(client, mode, gamma, up, down):
    cyclic = {"step_size_up": up, "mode": mode.upper()}
    if down:
        cyclic["step_size_down"] = down
    if mode == "exp_range":
        cyclic["gamma"] = gamma
    spec = {"max_lr": 0.1, "min_lr": 0.001, "cyclic": cyclic,
            "momentum": {"base": 0.8, "max": 0.9}}
    a, t = _sequences(
        client, "cyc-%s" % mode.replace("_", "-"), spec,
        lambda o: lr_scheduler.CyclicLR(
            o, base_lr=0.001, max_lr=0.1, step_size_up=up,
            step_size_down=down, mode=mode, gamma=gamma, cycle_momentum=True,
            base_momentum=0.8, max_momentum=0.9), 600, momentum=True)
    for step, ((alr, am), (tlr, tm)) in enumerate(zip(a, t)):
        assert _close(alr, tlr, 0.1 / 1000), (step, alr, tlr)
        assert _close(am, tm, 1 / 1000), (step, am, tm)


def test_param_groups_scale_relative_to_their_base_lr(client):
    """A group whose base LR equals max_lr gets the served LR exactly; a
    group with a 10x smaller base gets 10x smaller LRs, as PyTorch's
    CosineAnnealingWarmRestarts gives it (eta_min = 0)."""
    client.create("groups", {"max_lr": 0.1,
                             "warm_restarts": {"period": 10, "period_mult": 2}})
    a_opt = _opt(0.1, groups=[0.1, 0.01])
    t_opt = _opt(0.1, groups=[0.1, 0.01])
    a = AnnealLR(a_opt, "groups", client=client)
    t = lr_scheduler.CosineAnnealingWarmRestarts(t_opt, T_0=10, T_mult=2)
    for step in range(100):
        if step:
            a_opt.step(); a.step(); t_opt.step(); t.step()
        (a0, a1), (t0, t1) = ([g["lr"] for g in a_opt.param_groups],
                              [g["lr"] for g in t_opt.param_groups])
        assert a0 == t0
        assert a1 == pytest.approx(t1, rel=1e-15, abs=1e-18)
    a.close()


def test_mismatched_base_lr_warns(client):
    client.create("warn", {"max_lr": 0.1, "constant": {}})
    with pytest.warns(UserWarning, match="scaled by"):
        a = AnnealLR(_opt(0.01), "warn", client=client)
    assert a.get_last_lr() == [pytest.approx(0.01)]
    a.close()
