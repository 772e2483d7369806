"""annealctl import, checked against the libraries' own formulas.

For each library, random configs (fixed seed) are written as the library
spells them, translated by `annealctl import --from LIB`, evaluated by
`annealctl preview`, and compared at every step with the library: torch's own
schedulers driving a real optimizer, and for timm, optax, Hugging Face, Keras
and DeepSpeed their formulas transcribed in tests/python/anchor_formulas.py.
Tolerance as in test_anchor_conformance.py (1e-12 relative, down to a
thousandth of the peak); torch's chainable forms (StepLR, ExponentialLR,
CosineAnnealingLR, ...) multiply step by step, which drifts by an ulp per
step, so they get 1e-12 * steps.
"""

from __future__ import annotations

import json
import math
import random
import subprocess
import warnings

import pytest

import anchor_formulas as A
from conftest import BUILD_DIR

ANNEALCTL = str(BUILD_DIR / "bin" / "annealctl")
TOL = 1e-12


def run_import(source: str, config) -> subprocess.CompletedProcess:
    return subprocess.run([ANNEALCTL, "import", "--from", source, "-f", "-"],
                          input=json.dumps(config), capture_output=True,
                          text=True, timeout=60)


def imported(source: str, config) -> dict:
    out = run_import(source, config)
    assert out.returncode == 0, f"{config}: {out.stderr}"
    return json.loads(out.stdout)


def preview_rows(spec: dict, steps: int) -> list:
    out = subprocess.run([ANNEALCTL, "preview", "-f", "-", "--steps",
                          str(steps), "-o", "json"], input=json.dumps(spec),
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, f"{spec}: {out.stderr}"
    return json.loads(out.stdout)


def check(source, cases, tol=TOL):
    """cases: (config, steps, anchor lr(t), peak)."""
    for config, steps, anchor, peak in cases:
        spec = imported(source, config)
        rows = preview_rows(spec, steps)
        for t, row in enumerate(rows):
            want = anchor(t)
            assert abs(row["lr"] - want) <= tol * max(abs(want), peak / 1000), (
                f"{json.dumps(config)} at step {t}: anneal {row['lr']!r}, "
                f"library {want!r}; spec {json.dumps(spec)}")


def rng(name):
    return random.Random(f"importers-{name}")


# --- torch: its own schedulers ---------------------------------------------

torch = pytest.importorskip("torch")
from torch.optim import lr_scheduler  # noqa: E402


def torch_values(config, steps):
    """param_groups[0]'s (lr, momentum) at t = 0..steps-1, torch driving a
    real optimizer (step, then scheduler.step)."""
    p = torch.nn.Parameter(torch.zeros(1))
    opt = torch.optim.SGD([p], lr=config.get("lr", 0.1), momentum=0.9)

    def build(c):
        params = dict(c.get("params", {}))
        if c["type"] == "SequentialLR":
            params["schedulers"] = [build(s) for s in params["schedulers"]]
        return getattr(lr_scheduler, c["type"])(opt, **params)

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        sched = build(config)
        out = []
        for t in range(steps):
            if t:
                opt.step()
                sched.step()
            g = opt.param_groups[0]
            out.append((g["lr"], g["momentum"]))
    return out


def torch_cases(r):
    lr = r.choice([0.1, 1.0, 3e-4])
    yield {"type": "StepLR", "lr": lr,
           "params": {"step_size": r.randint(1, 40),
                      "gamma": r.choice([0.1, 0.5, 0.9])}}
    yield {"type": "MultiStepLR", "lr": lr,
           "params": {"milestones": sorted(r.sample(range(1, 300), 4)),
                      "gamma": r.choice([0.1, 0.5])}}
    yield {"type": "ExponentialLR", "lr": lr,
           "params": {"gamma": r.choice([0.99, 0.9, 0.995])}}
    yield {"type": "CosineAnnealingLR", "lr": lr,
           "params": {"T_max": 400, "eta_min": r.choice([0.0, lr / 100])}}
    yield {"type": "CosineAnnealingWarmRestarts", "lr": lr,
           "params": {"T_0": r.randint(1, 50), "T_mult": r.choice([1, 2, 3]),
                      "eta_min": r.choice([0.0, lr / 50])}}
    yield {"type": "LinearLR", "lr": lr,
           "params": {"start_factor": r.choice([0.1, 1 / 3, 0.5]),
                      "end_factor": r.choice([1.0, 0.5]),
                      "total_iters": r.randint(1, 100)}}
    yield {"type": "ConstantLR", "lr": lr,
           "params": {"factor": r.choice([0.1, 0.5, 1 / 3]),
                      "total_iters": r.randint(1, 100)}}
    yield {"type": "PolynomialLR", "lr": lr,
           "params": {"total_iters": r.randint(1, 300),
                      "power": r.choice([1.0, 2.0, 0.5])}}
    w = r.randint(1, 50)
    yield {"type": "SequentialLR", "lr": lr, "params": {
        "milestones": [w],
        "schedulers": [
            {"type": "LinearLR", "params": {"start_factor": 0.01,
                                            "total_iters": w}},
            {"type": "CosineAnnealingLR", "params": {"T_max": 400 - w}}]}}


@pytest.mark.parametrize("seed", range(6))
def test_torch(seed):
    r = rng(f"torch-{seed}")
    for config in torch_cases(r):
        steps = 400
        got = preview_rows(imported("torch", config), steps)
        want = torch_values(config, steps)
        for t in range(steps):
            lr = want[t][0]
            assert abs(got[t]["lr"] - lr) <= TOL * steps * max(
                abs(lr), config["lr"] / 1000), (
                f"{json.dumps(config)} at step {t}: anneal {got[t]['lr']!r}, "
                f"torch {lr!r}")


@pytest.mark.parametrize("seed", range(4))
def test_torch_cyclic_and_one_cycle_with_momentum(seed):
    r = rng(f"torch-cyclic-{seed}")
    configs = [
        {"type": "CyclicLR", "params": {
            "base_lr": 0.01, "max_lr": r.choice([0.1, 0.5]),
            "step_size_up": r.randint(1, 60),
            "step_size_down": r.choice([None, r.randint(1, 60)]),
            "mode": r.choice(["triangular", "triangular2", "exp_range"]),
            "gamma": r.choice([1.0, 0.99])}},
        {"type": "OneCycleLR", "params": {
            "max_lr": r.choice([0.1, 1.0]), "total_steps": r.randint(20, 400),
            "pct_start": r.choice([0.3, 0.25, 0.5]),
            "anneal_strategy": r.choice(["cos", "linear"]),
            "three_phase": r.choice([False, True])}},
    ]
    for config in configs:
        steps = 400 if config["type"] == "CyclicLR" else \
            config["params"]["total_steps"]
        got = preview_rows(imported("torch", config), steps)
        want = torch_values(config, steps)
        peak = config["params"]["max_lr"]
        for t in range(steps):
            lr, m = want[t]
            assert abs(got[t]["lr"] - lr) <= TOL * max(abs(lr), peak / 1000), (
                f"{json.dumps(config)} lr at {t}: {got[t]['lr']!r} vs {lr!r}")
            assert abs(got[t]["momentum"] - m) <= TOL, (
                f"{json.dumps(config)} momentum at {t}: "
                f"{got[t]['momentum']!r} vs {m!r}")


def test_torch_reduce_lr_on_plateau_becomes_a_policy():
    spec = imported("torch", {"type": "ReduceLROnPlateau", "lr": 0.1,
                              "metric": "val_loss",
                              "params": {"factor": 0.5, "patience": 3}})
    assert spec["constant"] == {}
    assert spec["plateau"]["metric"] == "val_loss"
    assert spec["plateau"]["factor"] == 0.5
    assert int(spec["plateau"]["patience"]) == 3
    out = run_import("torch", {"type": "ReduceLROnPlateau", "lr": 0.1})
    assert out.returncode == 2
    assert "metric: is required for ReduceLROnPlateau" in out.stderr


# --- timm -------------------------------------------------------------------

def test_timm():
    r = rng("timm")
    cases = []
    for _ in range(30):
        base = r.choice([0.1, 1.0, 5e-4])
        t_initial = r.randint(2, 60)
        cycle_mul = r.choice([1.0, 2.0, 1.5])
        kw = dict(t_initial=t_initial, lr_min=r.choice([0.0, base / 100]),
                  cycle_mul=cycle_mul, cycle_decay=r.choice([1.0, 0.5]),
                  cycle_limit=r.choice([1, 3, 1000]),
                  warmup_t=r.choice([0, 5, 12]),
                  warmup_lr_init=r.choice([0.0, base / 10]),
                  warmup_prefix=r.choice([True, False]))
        kind = r.choice(["CosineLRScheduler", "PolyLRScheduler",
                         "TanhLRScheduler"])
        if kind == "CosineLRScheduler":
            kw["k_decay"] = r.choice([1.0, 0.5, 2.0])
            anchor = lambda t, b=base, kw=dict(kw): A.timm_cosine(t, b, **kw)
        elif kind == "PolyLRScheduler":
            kw["power"] = r.choice([0.5, 1.0, 2.0])
            anchor = lambda t, b=base, kw=dict(kw): A.timm_poly(t, b, **kw)
        else:
            kw["lb"], kw["ub"] = r.choice([(-7.0, 3.0), (-3.0, 3.0)])
            anchor = lambda t, b=base, kw=dict(kw): A.timm_tanh(t, b, **kw)
        params = dict(kw, t_in_epochs=False, noise_std=1.0)
        cases.append(({"type": kind, "lr": base, "params": params}, 700,
                      anchor, base))
    for _ in range(10):
        base = r.choice([0.1, 1.0])
        w = r.choice([0, 4, 9])
        prefix = r.choice([True, False])
        step = dict(decay_t=r.randint(1, 30), decay_rate=r.choice([0.1, 0.5]),
                    warmup_t=w, warmup_lr_init=0.0, warmup_prefix=prefix)
        cases.append(({"type": "StepLRScheduler", "lr": base, "params": step},
                      300, lambda t, b=base, kw=step: A.timm_step(t, b, **kw),
                      base))
        multi = dict(step, decay_t=sorted(r.sample(range(1, 200), 3)))
        cases.append(({"type": "MultiStepLRScheduler", "lr": base,
                       "params": multi}, 300,
                      lambda t, b=base, kw=multi: A.timm_multistep(t, b, **kw),
                      base))
    check("timm", cases)


def test_timm_noise():
    r = rng("timm-noise")
    cases = []
    for _ in range(6):
        base, t_initial = 0.1, r.randint(5, 80)
        start = r.randint(0, 50)
        rng_t = [start, start + r.randint(1, 200)] if r.random() < 0.5 \
            else start
        kind, pct = r.choice(["normal", "uniform"]), r.choice([0.67, 0.3])
        seed = r.choice([42, 7])
        params = dict(t_initial=t_initial, cycle_limit=1000,
                      noise_range_t=rng_t, noise_pct=pct, noise_type=kind,
                      noise_seed=seed)
        cases.append(({"type": "CosineLRScheduler", "lr": base,
                       "params": params}, 300,
                      lambda t, b=base, ti=t_initial, nr=rng_t, p=pct, k=kind,
                      s=seed: A.timm_add_noise(
                          A.timm_cosine(t, b, ti, cycle_limit=1000), t, nr,
                          noise_pct=p, noise_type=k, noise_seed=s), base))
    check("timm", cases)


# --- optax ------------------------------------------------------------------

def test_optax():
    r = rng("optax")
    cases = []
    for _ in range(12):
        i, e = r.choice([(0.1, 0.001), (1e-3, 0.1), (0.5, 0.0)])
        T, b = r.randint(1, 300), r.choice([0, 0, 25])
        kw = dict(init_value=i, end_value=e, transition_steps=T,
                  transition_begin=b)
        cases.append(({"type": "linear_schedule", "params": kw}, 400,
                      lambda t, kw=kw: A.optax_linear(t, **kw), max(i, e)))
        pk = dict(kw, power=r.choice([0.5, 2.0, 3.0]))
        cases.append(({"type": "polynomial_schedule", "params": pk}, 400,
                      lambda t, kw=pk: A.optax_polynomial(t, **kw), max(i, e)))
        cd = dict(init_value=i, decay_steps=r.randint(1, 300),
                  alpha=r.choice([0.0, 0.1]), exponent=r.choice([1.0, 2.0]))
        cases.append(({"type": "cosine_decay_schedule", "params": cd}, 400,
                      lambda t, kw=cd: A.optax_cosine_decay(t, **kw), i))
        w = r.randint(0, 50)
        wc = dict(init_value=r.choice([0.0, 1e-4, 0.2]), peak_value=0.1,
                  warmup_steps=w, decay_steps=w + r.randint(1, 300),
                  end_value=r.choice([0.0, 1e-3]),
                  exponent=r.choice([1.0, 0.5]))
        cases.append(({"type": "warmup_cosine_decay_schedule", "params": wc},
                      400, lambda t, kw=wc: A.optax_warmup_cosine_decay(t, **kw),
                      0.2))
        ed = dict(init_value=0.1, transition_steps=r.randint(1, 50),
                  decay_rate=r.choice([0.5, 0.9, 0.99]),
                  staircase=r.choice([False, True]),
                  end_value=r.choice([None, 1e-3]),
                  transition_begin=r.choice([0, 10]))
        cases.append(({"type": "exponential_decay", "params": ed}, 400,
                      lambda t, kw=ed: A.optax_exponential_decay(t, **kw), 0.1))
        bs = {str(k): r.choice([0.1, 0.5, 2.0])
              for k in sorted(r.sample(range(0, 300), 3))}
        pc = dict(init_value=0.1, boundaries_and_scales=bs)
        cases.append(({"type": "piecewise_constant_schedule", "params": pc},
                      400, lambda t, bs={int(k): v for k, v in bs.items()}:
                      A.optax_piecewise_constant(t, 0.1, bs), 0.4))
        cycles = [dict(init_value=0.0, peak_value=r.choice([0.1, 0.05]),
                       warmup_steps=5, decay_steps=r.randint(10, 100),
                       end_value=1e-4) for _ in range(r.randint(1, 4))]
        cases.append(({"type": "sgdr_schedule",
                       "params": {"cosine_kwargs": cycles}}, 400,
                      lambda t, c=cycles: A.optax_sgdr(t, c), 0.1))
    check("optax", cases)


# --- Hugging Face -----------------------------------------------------------

def hf_cases(r):
    """One config per lr_scheduler_type with its anchor; a function, so the
    anchors close over this call's values."""
    lr, n = r.choice([5e-5, 3e-4, 0.1]), r.randint(20, 400)
    w = r.randint(0, n // 2)
    if r.random() < 0.3:
        warm = {"warmup_ratio": w / n}
        w = math.ceil(n * (w / n))  # TrainingArguments.get_warmup_steps
    else:
        warm = {"warmup_steps": w}
    c, nc = r.choice([0.5, 1.0, 1.5]), r.choice([1, 2, 3])
    pw, end = r.choice([1.0, 2.0]), lr / 100
    ts = r.choice([None, 50])
    d = r.randint(0, n // 3)
    decay_type = r.choice(["linear", "cosine", "1-sqrt"])
    min_ratio = r.choice([0.0, 0.1])
    rows = [
        # HF's cosines keep waving after n, where anneal holds: up to n.
        ("linear", {}, lambda t: A.hf_linear_with_warmup(t, w, n), 2 * n),
        ("cosine", {"num_cycles": c},
         lambda t: A.hf_cosine_with_warmup(t, w, n, c), n + 1),
        ("cosine_with_restarts", {"num_cycles": nc},
         lambda t: A.hf_cosine_with_hard_restarts(t, w, n, nc), n),
        ("polynomial", {"lr_end": end, "power": pw},
         lambda t: A.hf_polynomial_with_warmup(t, w, n, lr, end, pw), 2 * n),
        ("constant_with_warmup", {},
         lambda t: A.hf_constant_with_warmup(t, w), n),
        ("inverse_sqrt", {"timescale": ts},
         lambda t: A.hf_inverse_sqrt(t, w, ts), 2 * n),
        ("warmup_stable_decay",
         {"num_decay_steps": d, "decay_type": decay_type,
          "min_lr_ratio": min_ratio},
         lambda t: A.hf_wsd(t, w, n - w - d, d, "linear", decay_type,
                            min_ratio), 2 * n),
    ]
    for kind, kwargs, factor, steps in rows:
        config = dict(learning_rate=lr, num_training_steps=n, **warm,
                      lr_scheduler_type=kind, lr_scheduler_kwargs=kwargs)
        yield config, steps, (lambda t, f=factor: lr * f(t)), lr


def test_hf():
    r = rng("hf")
    check("hf", [case for _ in range(12) for case in hf_cases(r)])


def test_hf_cosine_with_min_lr():
    cases = []
    for rate, c in [(0.1, 0.5), (0.01, 1.0), (0.3, 0.25)]:
        lr, n, w = 1e-3, 300, 30
        config = {"lr_scheduler_type": "cosine_with_min_lr",
                  "learning_rate": lr, "num_training_steps": n,
                  "warmup_steps": w,
                  "lr_scheduler_kwargs": {"min_lr_rate": rate,
                                          "num_cycles": c}}

        def anchor(t, rate=rate, c=c, lr=lr, n=n, w=w):
            # transformers optimization.py
            # _get_cosine_schedule_with_warmup_lr_lambda with min_lr_rate.
            if t < w:
                return lr * (t / max(1, w))
            progress = (t - w) / max(1, n - w)
            factor = 0.5 * (1.0 + math.cos(math.pi * c * 2.0 * progress))
            return lr * max(0.0, factor * (1 - rate) + rate)
        cases.append((config, n + 1, anchor, lr))
    check("hf", cases)


# --- Keras ------------------------------------------------------------------

def test_keras():
    r = rng("keras")
    cases = []
    for _ in range(10):
        i = r.choice([0.1, 1.0])
        rows = [
            ("CosineDecay", dict(initial_learning_rate=i,
                                 decay_steps=r.randint(1, 300),
                                 alpha=r.choice([0.0, 0.1])),
             A.keras_cosine_decay),
            ("CosineDecay", dict(initial_learning_rate=i / 10,
                                 decay_steps=r.randint(1, 300),
                                 warmup_target=i, warmup_steps=r.randint(1, 50),
                                 alpha=r.choice([0.0, 0.1])),
             A.keras_cosine_decay),
            ("CosineDecayRestarts", dict(initial_learning_rate=i,
                                         first_decay_steps=r.randint(1, 60),
                                         t_mul=r.choice([1.0, 2.0, 1.5]),
                                         m_mul=r.choice([1.0, 0.8]),
                                         alpha=r.choice([0.0, 0.05])),
             A.keras_cosine_decay_restarts),
            ("ExponentialDecay", dict(initial_learning_rate=i,
                                      decay_steps=r.randint(1, 50),
                                      decay_rate=r.choice([0.5, 0.96]),
                                      staircase=r.choice([False, True])),
             A.keras_exponential_decay),
            ("InverseTimeDecay", dict(initial_learning_rate=i,
                                      decay_steps=r.randint(1, 50),
                                      decay_rate=r.choice([0.5, 2.0]),
                                      staircase=r.choice([False, True])),
             A.keras_inverse_time_decay),
            ("PolynomialDecay", dict(initial_learning_rate=i,
                                     decay_steps=r.randint(1, 200),
                                     end_learning_rate=i / 100,
                                     power=r.choice([1.0, 0.5, 2.0]),
                                     cycle=r.choice([False, True])),
             A.keras_polynomial_decay),
        ]
        for name, kw, formula in rows:
            config = {"module": "keras.optimizers.schedules",
                      "class_name": name, "config": dict(kw, name=name),
                      "registered_name": None}
            cases.append((config, 400,
                          lambda t, f=formula, kw=kw: f(t, **kw), i))
        bounds = sorted(r.sample(range(0, 300), 3))
        values = [r.choice([0.1, 0.05, 0.2, 0.01]) for _ in range(4)]
        cases.append(({"class_name": "PiecewiseConstantDecay",
                       "config": {"boundaries": bounds, "values": values}},
                      400, lambda t, b=bounds, v=values:
                      A.keras_piecewise_constant(t, b, v), 0.2))
    check("keras", cases)


# --- DeepSpeed --------------------------------------------------------------

def test_deepspeed():
    r = rng("deepspeed")
    cases = []
    for _ in range(16):
        kw = dict(warmup_min_lr=r.choice([0.0, 1e-5]),
                  warmup_max_lr=r.choice([1e-3, 0.1]),
                  warmup_num_steps=r.choice([1, 2, 10, 100, 250]),
                  warmup_type=r.choice(["log", "linear"]))
        cases.append(({"scheduler": {"type": "WarmupLR", "params": kw}}, 400,
                      lambda u, kw=kw: A.deepspeed_warmup(u, **kw), 0.1))
        dk = dict(kw, total_num_steps=max(2, kw["warmup_num_steps"]) +
                  r.randint(1, 300))
        cases.append(({"type": "WarmupDecayLR", "params": dk}, 500,
                      lambda u, kw=dk: A.deepspeed_warmup(u, **kw), 0.1))
    # A whole ds_config: WarmupLR's peak defaults to the optimizer's lr.
    ds = {"train_batch_size": 64, "fp16": {"enabled": True},
          "optimizer": {"type": "AdamW", "params": {"lr": 3e-4}},
          "scheduler": {"type": "WarmupLR",
                        "params": {"warmup_num_steps": 50}}}
    cases.append((ds, 100, lambda u: A.deepspeed_warmup(
        u, warmup_max_lr=3e-4, warmup_num_steps=50), 3e-4))
    check("deepspeed", cases)


# --- refusals ---------------------------------------------------------------

@pytest.mark.parametrize("source,config,message", [
    ("torch", {"type": "LambdaLR", "lr": 0.1, "params": {}},
     "type: cannot be reproduced by anneal: LambdaLR (a Python function)"),
    ("torch", {"type": "StepLR", "lr": 0.1,
               "params": {"step_size": 10, "gama": 0.5}},
     "params.gama: is not an option of StepLR"),
    ("torch", {"type": "StepLR", "lr": 0.1,
               "params": {"step_size": 10, "last_epoch": 40}},
     "params.last_epoch: cannot be reproduced by anneal: a resumed scheduler"),
    ("deepspeed", {"scheduler": {"type": "WarmupCosineLR",
                                 "params": {"total_num_steps": 1000}}},
     "scheduler.type: cannot be reproduced by anneal: WarmupCosineLR"),
    ("deepspeed", {"type": "OneCycle", "params": {}},
     "type: cannot be reproduced by anneal: DeepSpeed's OneCycle"),
    ("deepspeed", {"type": "WarmupLR", "params": {}},
     "params.warmup_max_lr: is required here"),
    ("keras", {"class_name": "ExponentialDecay",
               "config": {"initial_learning_rate": 0.1, "decay_steps": 10,
                          "decay_rate": 1.5}},
     "config.decay_rate: cannot be reproduced by anneal"),
    ("optax", {"type": "join_schedules", "params": {}},
     "type: cannot be reproduced by anneal: join_schedules"),
    ("hf", {"lr_scheduler_type": "cosine", "num_training_steps": 100,
            "warmup_steps": 100},
     "warmup_steps: must be below num_training_steps (100), got 100"),
    ("timm", {"type": "PlateauLRScheduler", "lr": 0.1},
     "type: cannot be reproduced by anneal: PlateauLRScheduler"),
])
def test_refusals_name_the_option(source, config, message):
    out = run_import(source, config)
    assert out.returncode == 2, out.stdout
    assert message in out.stderr
    assert out.stdout == ""


def test_notes_go_to_stderr_and_the_output_is_a_spec():
    out = run_import("torch", {"type": "CosineAnnealingLR", "lr": 0.1,
                               "params": {"T_max": 100}})
    assert out.returncode == 0
    assert "note: CosineAnnealingLR: after T_max (100)" in out.stderr
    spec = json.loads(out.stdout)
    assert spec["cosine"]["period"] == 100  # a number, not a string
    assert preview_rows(spec, 2)[0]["lr"] == 0.1


def test_yaml_config_from_a_file(tmp_path):
    path = tmp_path / "sched.yaml"
    path.write_text("lr_scheduler_type: linear\nlearning_rate: 1.0e-4\n"
                    "num_training_steps: 1000\nwarmup_steps: 10\n")
    out = subprocess.run([ANNEALCTL, "import", "--from", "hf", "-f",
                          str(path)], capture_output=True, text=True,
                         timeout=60)
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)["warmup"]["steps"] == 10
