#!/usr/bin/python3
"""Reference LR (and momentum) sequences from PyTorch's own schedulers.

What: for every anneal family with a PyTorch equivalent, this builds a real
torch optimizer (SGD with momentum=0.9 on one dummy parameter; Adam for the
beta1 cases) and the real torch.optim.lr_scheduler class, steps it N times
(optimizer.step() then scheduler.step(), the documented order) and records,
for t = 0..N-1 (t = scheduler.step() calls already made):

  lr_step    param_groups[0]['lr']: what a training loop actually uses; for
             the chainable schedulers this is PyTorch's recursive form, which
             drifts from the closed form by a few ulps per step.
  lr_closed  scheduler._get_closed_form_lr()[0] called after the same step,
             for the classes that define it; null for the others.
  momentum   param_groups[0]['momentum'] (or betas[0] under Adam) when the
             scheduler cycles it; null otherwise.

Each case also carries the equivalent anneal spec (proto JSON, snake_case),
the PyTorch constructor it was built from, and its tolerance class:
  "exact_closed_form"  step() itself evaluates a closed form
                       (CosineAnnealingWarmRestarts, CyclicLR, OneCycleLR);
  "recursive"          step() is the chainable/recursive form (StepLR,
                       MultiStepLR, ExponentialLR, PolynomialLR, LinearLR,
                       CosineAnnealingLR, SequentialLR).

Why: anneal/engine/pytorch_reference_test.cc checks the C++ engine against these
values (anneal's contract is "PyTorch's closed forms, to the last bit or a
few ulps"), and tests/python/test_reference_fresh.py re-runs this script to
prove the committed data and the script never drift apart.

Known, intended differences are kept out of the data rather than tolerated:
CosineAnnealingLR is recorded only for t <= T_max (anneal clamps after it,
PyTorch climbs back up); OneCycleLR only for t <= total_steps - 1 (anneal
holds, PyTorch overshoots then raises). Not representable in PyTorch 1.13
and therefore absent: CyclicLR cycling Adam's beta1 (1.13 raises
"optimizer must support momentum"), and SequentialLR warmups from exactly 0
(LinearLR(start_factor=0) divides by zero in its recursive step).

Deterministic: no randomness, floats written with repr (json.dumps), so
every value round-trips bit for bit.

Usage (torch is installed for the Debian system python only):
  /usr/bin/python3 scripts/gen_pytorch_reference.py > tests/data/pytorch_reference.json
  /usr/bin/python3 scripts/gen_pytorch_reference.py tests/data/pytorch_reference.json
"""

import json
import sys
import warnings

import torch
from torch.optim import lr_scheduler as sched

EXACT = "exact_closed_form"
RECURSIVE = "recursive"


def _optimizer(lr, adam=False):
    param = torch.nn.Parameter(torch.zeros(1))
    if adam:
        return torch.optim.Adam([param], lr=lr)
    return torch.optim.SGD([param], lr=lr, momentum=0.9)


def _fmt(value):
    if isinstance(value, str):
        return repr(value)
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_fmt(v) for v in value) + "]"
    return repr(value)


def _describe(cls_name, kwargs, adam=False):
    args = ", ".join("%s=%s" % (k, _fmt(v)) for k, v in kwargs.items())
    opt = "Adam" if adam else "SGD(momentum=0.9)"
    return "%s(%s, %s)" % (cls_name, opt, args)


def _run(opt, scheduler, steps, cycled_momentum):
    """Steps `scheduler` and records lr, closed form and momentum per step."""
    group = opt.param_groups[0]
    has_closed = hasattr(scheduler, "_get_closed_form_lr")
    use_betas = "betas" in opt.defaults
    lr_step, lr_closed, momentum = [], [], []
    for t in range(steps):
        if t > 0:
            opt.step()
            scheduler.step()
        lr_step.append(float(group["lr"]))
        if has_closed:
            lr_closed.append(float(scheduler._get_closed_form_lr()[0]))
        if cycled_momentum:
            m = group["betas"][0] if use_betas else group["momentum"]
            momentum.append(float(m))
    return (lr_step, lr_closed if has_closed else None,
            momentum if cycled_momentum else None)


def _case(name, spec, torch_desc, tolerance, steps, opt, scheduler,
          cycled_momentum=False):
    lr_step, lr_closed, momentum = _run(opt, scheduler, steps,
                                        cycled_momentum)
    return {
        # A C++ identifier, so GoogleTest can use it as the test name.
        "name": name.replace(".", "p").replace("-", "m").replace("+", ""),
        "spec": spec,
        "torch": torch_desc,
        "tolerance": tolerance,
        "steps": steps,
        "lr_step": lr_step,
        "lr_closed": lr_closed,
        "momentum": momentum,
    }


def _levels(max_lr, min_lr):
    spec = {"max_lr": max_lr}
    if min_lr:
        spec["min_lr"] = min_lr
    return spec


def step_lr_cases():
    for lr, step_size, gamma, steps in [
        (0.1, 10, 0.5, 200),
        (1.0, 1, 0.9, 300),  # step_size 1: decays every step
        (0.05, 30, 0.1, 1000),  # down to ~1e-35
        (0.1, 7, 1.0, 100),  # gamma 1: constant
        (3e-4, 100, 0.3, 3000),
    ]:
        opt = _optimizer(lr)
        kw = {"step_size": step_size, "gamma": gamma}
        spec = _levels(lr, 0)
        spec["step_decay"] = {"step_size": step_size, "gamma": gamma}
        yield _case("StepLR_s%d_g%s_lr%s" % (step_size, gamma, lr), spec,
                    _describe("StepLR", kw), RECURSIVE, steps, opt,
                    sched.StepLR(opt, **kw))


def multi_step_lr_cases():
    every_37 = list(range(37, 2000, 37))
    for tag, lr, milestones, gamma, steps in [
        ("30_80", 0.05, [30, 80], 0.1, 150),
        ("repeated", 0.1, [10, 20, 20, 50], 0.5, 100),  # 20 counts twice
        ("zero_triple", 0.1, [0, 5, 5, 5, 100], 0.7, 200),  # milestone 0
        ("every37", 0.01, every_37, 0.9, 2500),
    ]:
        opt = _optimizer(lr)
        kw = {"milestones": milestones, "gamma": gamma}
        spec = _levels(lr, 0)
        spec["step_decay"] = {"milestones": milestones, "gamma": gamma}
        yield _case("MultiStepLR_%s" % tag, spec,
                    _describe("MultiStepLR", kw), RECURSIVE, steps, opt,
                    sched.MultiStepLR(opt, **kw))


def exponential_lr_cases():
    for lr, gamma, steps in [
        (0.1, 0.99, 3000),
        (1.0, 0.9, 500),
        (3e-4, 0.999, 3000),
        (0.1, 1.0, 50),  # gamma 1: constant
    ]:
        opt = _optimizer(lr)
        kw = {"gamma": gamma}
        spec = _levels(lr, 0)
        spec["exponential_decay"] = {"gamma": gamma}
        yield _case("ExponentialLR_g%s_lr%s" % (gamma, lr), spec,
                    _describe("ExponentialLR", kw), RECURSIVE, steps, opt,
                    sched.ExponentialLR(opt, **kw))


def polynomial_lr_cases():
    for lr, total, power, steps in [
        (0.1, 100, 1.0, 150),
        (0.01, 1000, 2.0, 1200),
        (1.0, 50, 0.5, 80),
        (0.1, 1, 1.0, 50),  # total_iters 1
        (0.05, 300, 3.7, 400),
    ]:
        opt = _optimizer(lr)
        kw = {"total_iters": total, "power": power}
        spec = _levels(lr, 0)
        spec["polynomial_decay"] = {"total_steps": total, "power": power}
        yield _case("PolynomialLR_T%d_p%s" % (total, power), spec,
                    _describe("PolynomialLR", kw), RECURSIVE, steps, opt,
                    sched.PolynomialLR(opt, **kw))


def linear_lr_cases():
    for tag, lr, start, end, total, steps in [
        ("default", 0.05, 1.0 / 3, 1.0, 5, 50),
        ("warmup1000", 0.1, 0.001, 1.0, 1000, 1200),
        ("to_zero", 0.1, 1.0, 0.0, 100, 150),
        ("half_to_tenth", 1.0, 0.5, 0.1, 200, 300),
        ("T1", 0.1, 0.25, 1.0, 1, 50),
        ("flat", 0.1, 1.0, 1.0, 10, 50),
    ]:
        opt = _optimizer(lr)
        kw = {"start_factor": start, "end_factor": end, "total_iters": total}
        spec = _levels(lr, 0)
        spec["linear"] = {"start_factor": start, "end_factor": end,
                          "total_steps": total}
        yield _case("LinearLR_%s" % tag, spec, _describe("LinearLR", kw),
                    RECURSIVE, steps, opt, sched.LinearLR(opt, **kw))


def cosine_lr_cases():
    # Only t <= T_max: anneal holds min_lr afterwards, PyTorch climbs back.
    for lr, t_max, eta_min in [
        (0.1, 1, 0.0),
        (0.1, 10, 0.001),
        (1.0, 100, 0.0),
        (3e-4, 1000, 1e-5),
        (0.5, 2999, 0.01),
        (0.05, 7, 0.05),  # eta_min == base lr: flat
    ]:
        opt = _optimizer(lr)
        kw = {"T_max": t_max, "eta_min": eta_min}
        spec = _levels(lr, eta_min)
        spec["cosine"] = {"period": t_max}
        yield _case("CosineAnnealingLR_T%d_eta%s" % (t_max, eta_min), spec,
                    _describe("CosineAnnealingLR", kw), RECURSIVE, t_max + 1,
                    opt, sched.CosineAnnealingLR(opt, **kw))


def warm_restarts_cases():
    # The plain step() path: PyTorch's incremental integer bookkeeping.
    for lr, t0, mult, eta_min, steps in [
        (0.1, 10, 1, 0.0, 300),
        (0.1, 10, 2, 1e-4, 1500),
        (0.1, 1, 3, 0.0, 600),  # restarts at 40, 121, 364
        (0.05, 3, 2, 0.001, 1000),
        (1.0, 5, 3, 0.0, 1000),
        (0.1, 1, 10, 0.0, 1500),  # restarts at 11, 111, 1111
        (0.1, 1, 1, 0.0, 50),  # every step restarts: always max_lr
        (0.02, 50, 1, 0.01, 3000),
    ]:
        opt = _optimizer(lr)
        kw = {"T_0": t0, "T_mult": mult, "eta_min": eta_min}
        spec = _levels(lr, eta_min)
        spec["warm_restarts"] = {"period": t0, "period_mult": mult}
        yield _case("CosineAnnealingWarmRestarts_T%d_m%d_eta%s" %
                    (t0, mult, eta_min), spec,
                    _describe("CosineAnnealingWarmRestarts", kw), EXACT,
                    steps, opt, sched.CosineAnnealingWarmRestarts(opt, **kw))


def cyclic_lr_cases():
    modes = {"triangular": "TRIANGULAR", "triangular2": "TRIANGULAR2",
             "exp_range": "EXP_RANGE"}
    for (tag, base_lr, max_lr, up, down, mode, gamma, momentum,
         steps) in [
        ("tri_5", 0.001, 0.1, 5, None, "triangular", 1.0, (0.8, 0.9), 200),
        ("tri_4_6_base0", 0.0, 1.0, 4, 6, "triangular", 1.0, (0.85, 0.95),
         300),
        ("tri2_10_20", 0.01, 0.1, 10, 20, "triangular2", 1.0, (0.8, 0.9),
         600),
        ("exp_25", 1e-4, 1e-2, 25, 25, "exp_range", 0.999, (0.8, 0.9), 2000),
        ("exp_7_3_base0", 0.0, 0.1, 7, 3, "exp_range", 0.99, (0.9, 0.95),
         500),
        ("tri_1_1", 0.001, 0.1, 1, 1, "triangular", 1.0, (0.8, 0.9), 100),
        ("tri_100_150_base0", 0.0, 0.1, 100, 150, "triangular", 1.0,
         (0.85, 0.95), 3000),
        ("tri2_1_3", 0.01, 0.1, 1, 3, "triangular2", 1.0, (0.8, 0.9), 200),
        ("tri_2000_nomom", 0.001, 0.006, 2000, None, "triangular", 1.0, None,
         3000),
    ]:
        opt = _optimizer(base_lr)
        kw = {"base_lr": base_lr, "max_lr": max_lr, "step_size_up": up}
        if down is not None:
            kw["step_size_down"] = down
        kw["mode"] = mode
        if mode == "exp_range":
            kw["gamma"] = gamma
        if momentum is None:
            kw["cycle_momentum"] = False
        else:
            kw["cycle_momentum"] = True
            kw["base_momentum"], kw["max_momentum"] = momentum
        spec = _levels(max_lr, base_lr)
        cyclic = {"step_size_up": up}
        if down is not None:
            cyclic["step_size_down"] = down
        cyclic["mode"] = modes[mode]
        if mode == "exp_range":
            cyclic["gamma"] = gamma
        spec["cyclic"] = cyclic
        if momentum is not None:
            spec["momentum"] = {"base": momentum[0], "max": momentum[1]}
        yield _case("CyclicLR_%s" % tag, spec, _describe("CyclicLR", kw),
                    EXACT, steps, opt, sched.CyclicLR(opt, **kw),
                    cycled_momentum=momentum is not None)
    # CyclicLR cycling Adam's beta1: torch 1.13 only looks for 'momentum' in
    # optimizer.defaults and raises; recorded if a future torch accepts it.
    opt = _optimizer(1e-4, adam=True)
    kw = {"base_lr": 1e-4, "max_lr": 1e-3, "step_size_up": 10,
          "mode": "triangular", "cycle_momentum": True,
          "base_momentum": 0.85, "max_momentum": 0.95}
    try:
        scheduler = sched.CyclicLR(opt, **kw)
    except ValueError as e:
        sys.stderr.write("skipped CyclicLR with Adam: %s\n" % e)
        return
    spec = {"max_lr": 1e-3, "min_lr": 1e-4,
            "cyclic": {"step_size_up": 10, "mode": "TRIANGULAR"},
            "momentum": {"base": 0.85, "max": 0.95}}
    yield _case("CyclicLR_adam_beta1", spec,
                _describe("CyclicLR", kw, adam=True), EXACT, 200, opt,
                scheduler, cycled_momentum=True)


def one_cycle_lr_cases():
    for (tag, adam, max_lr, total, pct, anneal, div, final_div, three,
         momentum) in [
        ("cos_100", False, 0.1, 100, 0.3, "cos", 25.0, 1e4, False,
         (0.85, 0.95)),
        ("linear_1000", False, 1.0, 1000, 0.25, "linear", 10.0, 100.0, False,
         (0.8, 0.9)),
        ("cos_3000_three", False, 0.01, 3000, 0.3, "cos", 25.0, 1e4, True,
         (0.85, 0.95)),
        ("linear_257_three", False, 0.5, 257, 0.4, "linear", 5.0, 1e3, True,
         (0.9, 0.99)),
        ("cos_50_div1", False, 0.1, 50, 0.1, "cos", 1.0, 1.0, False,
         (0.85, 0.95)),
        ("cos_333_frac", False, 0.1, 333, 0.3, "cos", 25.0, 1e4, False,
         (0.85, 0.95)),  # pct_start * total_steps not an integer
        ("cos_10", False, 0.1, 10, 0.5, "cos", 25.0, 1e4, False, (0.85, 0.95)),
        ("linear_10_three", False, 0.1, 10, 0.3, "linear", 25.0, 1e4, True,
         (0.85, 0.95)),
        ("adam_cos_500", True, 3e-4, 500, 0.3, "cos", 25.0, 1e4, False,
         (0.85, 0.95)),
        ("adam_linear_400_three", True, 1e-3, 400, 0.2, "linear", 20.0, 100.0,
         True, (0.9, 0.98)),
    ]:
        opt = _optimizer(max_lr, adam=adam)
        kw = {"max_lr": max_lr, "total_steps": total, "pct_start": pct,
              "anneal_strategy": anneal, "div_factor": div,
              "final_div_factor": final_div, "three_phase": three,
              "cycle_momentum": True, "base_momentum": momentum[0],
              "max_momentum": momentum[1]}
        one_cycle = {"total_steps": total, "pct_start": pct,
                     "anneal": "COSINE" if anneal == "cos" else "LINEAR",
                     "div_factor": div, "final_div_factor": final_div}
        if three:
            one_cycle["three_phase"] = True
        spec = {"max_lr": max_lr, "one_cycle": one_cycle,
                "momentum": {"base": momentum[0], "max": momentum[1]}}
        # Steps 0..total_steps-1 only: PyTorch overshoots at total_steps.
        yield _case("OneCycleLR_%s" % tag, spec,
                    _describe("OneCycleLR", kw, adam=adam), EXACT, total, opt,
                    sched.OneCycleLR(opt, **kw), cycled_momentum=True)


def sequential_lr_cases():
    # SequentialLR([LinearLR(s/B, total_iters=W), CosineAnnealingLR(P)], [W])
    # == {max_lr: B, warmup: {steps: W, start_lr: s}, cosine: {period: P}},
    # recorded for t <= W + P (the cosine clamps after its period).
    for tag, base, start, warm, period, eta_min in [
        ("W10_P90", 0.1, 0.001, 10, 90, 0.0),
        ("W100_P900", 1.0, 1e-6, 100, 900, 0.0),
        ("W500_P2500", 3e-4, 3e-6, 500, 2500, 0.0),
        ("W1_P50", 0.05, 0.025, 1, 50, 0.0),
        ("W20_P200_eta", 0.1, 0.01, 20, 200, 0.001),
    ]:
        opt = _optimizer(base)
        linear_kw = {"start_factor": start / base, "total_iters": warm}
        cosine_kw = {"T_max": period, "eta_min": eta_min}
        first = sched.LinearLR(opt, **linear_kw)
        second = sched.CosineAnnealingLR(opt, **cosine_kw)
        scheduler = sched.SequentialLR(opt, [first, second], milestones=[warm])
        desc = "SequentialLR(SGD(momentum=0.9), [%s, %s], milestones=[%d])" % (
            _describe("LinearLR", linear_kw),
            _describe("CosineAnnealingLR", cosine_kw), warm)
        spec = _levels(base, eta_min)
        spec["warmup"] = {"steps": warm, "start_lr": start}
        spec["cosine"] = {"period": period}
        yield _case("SequentialLR_%s" % tag, spec, desc, RECURSIVE,
                    warm + period + 1, opt, scheduler)


def main(argv):
    # CosineAnnealingLR inside SequentialLR is entered with the deprecated
    # step(epoch); PyTorch warns, the values are what we want.
    warnings.simplefilter("ignore")
    cases = []
    for family in (step_lr_cases, multi_step_lr_cases, exponential_lr_cases,
                   polynomial_lr_cases, linear_lr_cases, cosine_lr_cases,
                   warm_restarts_cases, cyclic_lr_cases, one_cycle_lr_cases,
                   sequential_lr_cases):
        cases.extend(family())
    names = [c["name"] for c in cases]
    assert len(names) == len(set(names)), "duplicate case names"
    header = {
        "generator": "scripts/gen_pytorch_reference.py",
        "torch_version": torch.__version__.split("+")[0],
        "conventions": "t = scheduler.step() calls made; lr_step = "
                       "param_groups[0]['lr']; lr_closed = "
                       "_get_closed_form_lr()[0] or null; momentum = "
                       "param_groups[0]['momentum'] or betas[0], or null",
    }
    lines = ["{"]
    for key, value in header.items():
        lines.append("%s:%s," % (json.dumps(key), json.dumps(value)))
    lines.append('"cases":[')
    for i, case in enumerate(cases):
        sep = "," if i + 1 < len(cases) else ""
        lines.append(json.dumps(case, separators=(",", ":"),
                                allow_nan=False) + sep)
    lines.append("]}")
    text = "\n".join(lines) + "\n"
    if len(argv) > 1:
        with open(argv[1], "w") as f:
            f.write(text)
    else:
        sys.stdout.write(text)


if __name__ == "__main__":
    main(sys.argv)
