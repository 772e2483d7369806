"""anneal against timm, Keras, optax and Hugging Face, step by step.

For each schedule a user ports from one of these libraries, random configs
(fixed seed) are mapped to the anneal spec docs/schedules.md gives as its
equivalent, evaluated by `annealctl preview`, and compared at every step with
the library's own formula transcribed in tests/python/anchor_formulas.py
(steps past an anchor's end are compared too, except where anneal holds by
design and the anchor does not: HF's unclamped cosine after N,
docs/conventions.md "Ends are clamped"):

    |anneal - anchor| <= 1e-12 * max(|anchor|, peak / 1000)

(relative to the value down to a thousandth of the peak, where the two
libraries' different but equivalent arithmetic can only differ by ulps of
the peak). A failure names the config, the spec and the first step off.
"""

from __future__ import annotations

import itertools
import json
import random
import subprocess

import pytest

import anchor_formulas as A
from conftest import BUILD_DIR

TOL = 1e-12


def preview_rows(spec: dict, steps: int) -> list:
    """annealctl preview -o json: one dict per step."""
    out = subprocess.run(
        [str(BUILD_DIR / "bin" / "annealctl"), "preview", "-f", "-",
         "--steps", str(steps), "-o", "json"],
        input=json.dumps(spec), capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, f"{spec}: {out.stderr}"
    return json.loads(out.stdout)


def preview(spec: dict, steps: int) -> list:
    return [row["lr"] for row in preview_rows(spec, steps)]


def check(cases, peak_of=lambda spec: spec["max_lr"]):
    """cases: (description, anneal spec, steps, anchor lr(t))."""
    for description, spec, steps, anchor in cases:
        got = preview(spec, steps)
        floor = peak_of(spec) / 1000
        for t, lr in enumerate(got):
            want = anchor(t)
            assert abs(lr - want) <= TOL * max(abs(want), floor), (
                f"{description} at step {t}: anneal {lr!r}, anchor {want!r}; "
                f"spec {json.dumps(spec)}")


def rng(name: str) -> random.Random:
    return random.Random(f"anchor-conformance-{name}")


# --- timm -----------------------------------------------------------------

def test_timm_cosine_with_restarts():
    r = rng("timm-cosine")
    cases = []
    for _ in range(40):
        base = r.choice([0.1, 1.0, 3e-4, 0.05])
        t_initial = r.randint(1, 60)
        lr_min = r.choice([0.0, base * r.uniform(0, 0.2)])
        cycle_mul = r.choice([1.0, 2.0, 3.0, 1.5, 1.25, 2.5, 0.8, 0.5])
        cycle_decay = r.choice([1.0, 0.5, 0.8, 0.9])
        cycle_limit = r.choice([1, 2, 5, 1000])
        if cycle_mul < 1:
            # timm raises past t_initial / (1 - cycle_mul); anneal needs every
            # cycle to last a step.
            while cycle_limit > 1 and t_initial * cycle_mul ** (cycle_limit - 1) < 1:
                cycle_limit -= 1
        spec = {"max_lr": base, "min_lr": lr_min,
                "warm_restarts": {"period": t_initial, "period_mult": cycle_mul,
                                  "peak_decay": cycle_decay,
                                  "max_cycles": cycle_limit,
                                  "cycle_lengths": "REAL"}}
        kw = dict(t_initial=t_initial, lr_min=lr_min, cycle_mul=cycle_mul,
                  cycle_decay=cycle_decay, cycle_limit=cycle_limit)
        cases.append((f"CosineLRScheduler({kw})", spec, 1500,
                      lambda t, kw=kw, base=base: A.timm_cosine(t, base, **kw)))
    check(cases)


def test_timm_warmup_prefix():
    r = rng("timm-prefix")
    cases = []
    for _ in range(15):
        base = r.choice([0.1, 1.0])
        w = r.randint(1, 30)
        init = r.choice([0.0, base * r.uniform(0, 0.5)])
        t_initial = r.randint(5, 80)
        cycle_mul = r.choice([1.0, 2.0, 1.5])
        spec = {"max_lr": base, "warmup": {"steps": w, "start_lr": init},
                "warm_restarts": {"period": t_initial, "period_mult": cycle_mul,
                                  "max_cycles": 1000, "cycle_lengths": "REAL"}}
        kw = dict(t_initial=t_initial, cycle_mul=cycle_mul, cycle_limit=1000,
                  warmup_t=w, warmup_lr_init=init, warmup_prefix=True)
        cases.append((f"CosineLRScheduler({kw})", spec, 800,
                      lambda t, kw=kw, base=base: A.timm_cosine(t, base, **kw)))
    check(cases)


def test_timm_overlapping_warmup():
    # warmup_prefix=False, timm's default: the ramp replaces the first
    # warmup_t steps of the cosine's own clock.
    r = rng("timm-overlap")
    cases = []
    for _ in range(15):
        base = r.choice([0.1, 1.0])
        w = r.randint(1, 30)
        init = r.choice([0.0, base * r.uniform(0, 0.5), base * 1.5])
        t_initial = r.randint(5, 80)
        cycle_mul = r.choice([1.0, 2.0, 1.5])
        spec = {"max_lr": base,
                "warmup": {"steps": w, "start_lr": init, "overlap": True},
                "warm_restarts": {"period": t_initial, "period_mult": cycle_mul,
                                  "max_cycles": 1000, "cycle_lengths": "REAL"}}
        kw = dict(t_initial=t_initial, cycle_mul=cycle_mul, cycle_limit=1000,
                  warmup_t=w, warmup_lr_init=init, warmup_prefix=False)
        cases.append((f"CosineLRScheduler({kw})", spec, 800,
                      lambda t, kw=kw, base=base: A.timm_cosine(t, base, **kw)))
    check(cases, peak_of=lambda spec: max(spec["max_lr"],
                                          spec["warmup"]["start_lr"]))


def _timm_cycles(r):
    t_initial = r.randint(2, 60)
    cycle_mul = r.choice([1.0, 2.0, 1.5, 0.8])
    cycle_limit = r.choice([1, 3, 1000])
    if cycle_mul < 1:
        while cycle_limit > 1 and t_initial * cycle_mul ** (cycle_limit - 1) < 1:
            cycle_limit -= 1
    return t_initial, cycle_mul, r.choice([1.0, 0.5]), cycle_limit


def test_timm_poly_tanh_and_k_decay():
    r = rng("timm-poly-tanh")
    cases = []
    for _ in range(20):
        base, lr_min = r.choice([0.1, 1.0]), r.choice([0.0, 0.01])
        t_initial, cycle_mul, cycle_decay, cycle_limit = _timm_cycles(r)
        restarts = {"period": t_initial, "period_mult": cycle_mul,
                    "peak_decay": cycle_decay, "max_cycles": cycle_limit,
                    "cycle_lengths": "REAL"}
        common = dict(t_initial=t_initial, lr_min=lr_min, cycle_mul=cycle_mul,
                      cycle_decay=cycle_decay, cycle_limit=cycle_limit)
        k = r.choice([1.0, 0.5, 2.0, 1.5])
        power = r.choice([0.5, 1.0, 2.0])
        cases.append((f"PolyLRScheduler(power={power}, k_decay={k}, {common})",
                      {"max_lr": base, "min_lr": lr_min, "warm_restarts": {
                          **restarts, "shape": "POLYNOMIAL", "power": power,
                          "k_decay": k}}, 800,
                      lambda t, c=common, b=base, p=power, k=k:
                      A.timm_poly(t, b, power=p, k_decay=k, **c)))
        cases.append((f"CosineLRScheduler(k_decay={k}, {common})",
                      {"max_lr": base, "min_lr": lr_min, "warm_restarts": {
                          **restarts, "k_decay": k}}, 800,
                      lambda t, c=common, b=base, k=k:
                      A.timm_cosine(t, b, k_decay=k, **c)))
        lb, ub = r.choice([(-7.0, 3.0), (-3.0, 3.0), (-5.0, 1.0)])
        w = r.choice([0, 5, 12])
        prefix = r.choice([True, False])
        spec = {"max_lr": base, "min_lr": lr_min, "warm_restarts": {
            **restarts, "shape": "TANH", "tanh_lower": lb, "tanh_upper": ub}}
        if w:
            spec["warmup"] = {"steps": w, "start_lr": 0.0}
            if not prefix:
                spec["warmup"].update(overlap=True, to_curve=True)
        cases.append((f"TanhLRScheduler(lb={lb}, ub={ub}, warmup_t={w}, "
                      f"warmup_prefix={prefix}, {common})", spec, 800,
                      lambda t, c=common, b=base, lb=lb, ub=ub, w=w, p=prefix:
                      A.timm_tanh(t, b, lb=lb, ub=ub, warmup_t=w,
                                  warmup_prefix=p, **c)))
    check(cases)


def test_timm_lr_noise():
    # noise_range_t as a start or a [start, end) pair, both noise types,
    # several seeds and bands; the draws are torch's own generator.
    r = rng("timm-noise")
    cases = []
    for _ in range(12):
        base, t_initial = r.choice([0.1, 1.0]), r.randint(5, 80)
        start = r.randint(0, 50)
        end = r.choice([None, start + r.randint(1, 300)])
        kind = r.choice(["normal", "uniform"])
        # The edges timm accepts: pct 1, and a tiny uniform band.
        pct = r.choice([0.67, 0.1, 0.3, 0.05, 1.0] +
                       ([0.004] if kind == "uniform" else []))
        seed = r.choice([42, 0, 12345, 2 ** 31 + 7])
        noise = {"start_step": start, "pct": pct, "seed": seed,
                 "type": kind.upper()}
        if end is not None:
            noise["end_step"] = end
        spec = {"max_lr": base, "lr_noise": noise, "warm_restarts": {
            "period": t_initial, "max_cycles": 1000}}
        rng_t = [start, end] if end is not None else start
        kw = dict(t_initial=t_initial, cycle_limit=1000)
        cases.append((f"CosineLRScheduler({kw}, noise_range_t={rng_t}, "
                      f"noise_pct={pct}, noise_type={kind}, seed={seed})",
                      spec, 400,
                      lambda t, kw=kw, b=base, n=rng_t, p=pct, k=kind, s=seed:
                      A.timm_add_noise(A.timm_cosine(t, b, **kw), t, n, p, k,
                                       s)))
    check(cases, peak_of=lambda spec: spec["max_lr"] * 2)


# --- Keras ----------------------------------------------------------------

def test_keras_cosine_decay_restarts():
    r = rng("keras-restarts")
    cases = []
    for _ in range(40):
        lr = r.choice([1.0, 0.1, 0.003])
        first = r.randint(1, 50)
        t_mul = r.choice([1.0, 2.0, 1.5, 2.5, 3.0, 1.1])
        m_mul = r.choice([1.0, 0.5, 0.9, 0.7])
        alpha = r.choice([0.0, 0.1, 0.01, 0.3])
        spec = {"max_lr": lr, "min_lr": alpha * lr,
                "warm_restarts": {"period": first, "period_mult": t_mul,
                                  "peak_decay": m_mul,
                                  "decay_law": "AMPLITUDE",
                                  "cycle_lengths": "REAL"}}
        kw = dict(first_decay_steps=first, t_mul=t_mul, m_mul=m_mul,
                  alpha=alpha)
        cases.append((f"CosineDecayRestarts({lr}, {kw})", spec, 1500,
                      lambda t, kw=kw, lr=lr:
                      A.keras_cosine_decay_restarts(t, lr, **kw)))
    check(cases)


def test_keras_cosine_decay_restarts_growing_peaks():
    # m_mul > 1 needs a cycle limit in anneal; Keras has none, so compare
    # the cycles before it.
    r = rng("keras-growing")
    cases = []
    for _ in range(10):
        lr, first, t_mul = 0.01, r.randint(2, 40), r.choice([1.0, 2.0, 1.5])
        m_mul, alpha, cycles = r.choice([1.2, 1.5, 2.0]), r.choice([0, 0.1]), 4
        spec = {"max_lr": lr, "min_lr": alpha * lr,
                "warm_restarts": {"period": first, "period_mult": t_mul,
                                  "peak_decay": m_mul, "max_cycles": cycles,
                                  "decay_law": "AMPLITUDE",
                                  "cycle_lengths": "REAL"}}
        end = int(first * sum(t_mul ** k for k in range(cycles)))
        kw = dict(first_decay_steps=first, t_mul=t_mul, m_mul=m_mul,
                  alpha=alpha)
        cases.append((f"CosineDecayRestarts({lr}, {kw})", spec, end,
                      lambda t, kw=kw, lr=lr:
                      A.keras_cosine_decay_restarts(t, lr, **kw)))
    check(cases, peak_of=lambda spec: spec["max_lr"] * 8)


def test_keras_decays():
    r = rng("keras-decays")
    cases = []
    for _ in range(10):
        lr, d = r.choice([0.1, 1.0]), r.randint(1, 300)
        alpha = r.choice([0.0, 0.05])
        cases.append((f"CosineDecay({lr}, {d}, alpha={alpha})",
                      {"max_lr": lr, "min_lr": alpha * lr,
                       "cosine": {"period": d}}, d + 50,
                      lambda t, lr=lr, d=d, a=alpha:
                      A.keras_cosine_decay(t, lr, d, a)))
        w, target = r.randint(1, 50), lr * r.choice([1.0, 2.0, 10.0])
        cases.append((f"CosineDecay({lr}, {d}, warmup {w} to {target})",
                      {"max_lr": target, "min_lr": alpha * target,
                       "warmup": {"steps": w, "start_lr": lr},
                       "cosine": {"period": d}}, d + w + 50,
                      lambda t, lr=lr, d=d, a=alpha, w=w, p=target:
                      A.keras_cosine_decay(t, lr, d, a, warmup_target=p,
                                           warmup_steps=w)))
        rate, steps = r.choice([0.5, 0.9, 0.96]), r.randint(1, 100)
        stair = r.choice([False, True])
        cases.append((f"ExponentialDecay({lr}, {steps}, {rate}, {stair})",
                      {"max_lr": lr, "exponential_decay": {
                          "gamma": rate, "transition_steps": steps,
                          "staircase": stair}}, 1000,
                      lambda t, lr=lr, s=steps, g=rate, st=stair:
                      A.keras_exponential_decay(t, lr, s, g, st)))
        rate, steps2 = r.choice([0.5, 1.0, 2.0]), r.randint(1, 60)
        cases.append((f"InverseTimeDecay({lr}, {steps2}, {rate}, "
                      "staircase=True)",
                      {"max_lr": lr, "inverse_time_decay": {
                          "t0": steps2 / rate, "power": 1,
                          "staircase_steps": steps2}}, 1000,
                      lambda t, lr=lr, s=steps2, g=rate:
                      A.keras_inverse_time_decay(t, lr, s, g, True)))
        end2 = lr * r.choice([0.0, 0.01])
        d2 = r.randint(1, 80)
        pw = r.choice([1.0, 0.5, 2.0])
        cases.append((f"PolynomialDecay({lr}, {d2}, {end2}, {pw}, "
                      "cycle=True)",
                      {"max_lr": lr, "min_lr": end2, "polynomial_decay": {
                          "total_steps": d2, "power": pw, "cycle": True}},
                      1000,
                      lambda t, lr=lr, d=d2, e=end2, p=pw:
                      A.keras_polynomial_decay(t, lr, d, e, p, cycle=True)))
        growth = r.choice([1.01, 1.1, 2.0])
        cap = lr * r.choice([10.0, 100.0])
        cases.append((f"ExponentialDecay({lr}, {steps}, {growth}) capped",
                      {"max_lr": cap, "exponential_decay": {
                          "gamma": growth, "transition_steps": steps,
                          "staircase": stair, "start_lr": lr}}, 1000,
                      lambda t, lr=lr, s=steps, g=growth, st=stair, c=cap:
                      min(c, A.keras_exponential_decay(t, lr, s, g, st))))
        rate = r.choice([0.5, 1.0, 2.0])
        cases.append((f"InverseTimeDecay({lr}, {steps}, {rate})",
                      {"max_lr": lr, "inverse_time_decay": {
                          "t0": steps / rate, "power": 1}}, 1000,
                      lambda t, lr=lr, s=steps, g=rate:
                      A.keras_inverse_time_decay(t, lr, s, g)))
        end, power = lr * r.choice([0.0, 0.01]), r.choice([1.0, 0.5, 2.0])
        cases.append((f"PolynomialDecay({lr}, {d}, {end}, {power})",
                      {"max_lr": lr, "min_lr": end, "polynomial_decay": {
                          "total_steps": d, "power": power}}, d + 50,
                      lambda t, lr=lr, d=d, e=end, p=power:
                      A.keras_polynomial_decay(t, lr, d, e, p)))
    check(cases)


# --- optax ----------------------------------------------------------------

def test_optax_schedules():
    r = rng("optax")
    cases = []
    for _ in range(12):
        init, d = r.choice([0.1, 1.0, 3e-4]), r.randint(1, 400)
        alpha = r.choice([0.0, 0.1])
        cases.append((f"cosine_decay_schedule({init}, {d}, {alpha})",
                      {"max_lr": init, "min_lr": alpha * init,
                       "cosine": {"period": d}}, d + 50,
                      lambda t, i=init, d=d, a=alpha:
                      A.optax_cosine_decay(t, i, d, a)))
        e = r.choice([0.5, 2.0, 3.0, 1.5])
        cases.append((f"cosine_decay_schedule({init}, {d}, {alpha}, "
                      f"exponent={e})",
                      {"max_lr": init, "min_lr": alpha * init,
                       "cosine": {"period": d, "exponent": e}}, d + 50,
                      lambda t, i=init, d=d, a=alpha, e=e:
                      A.optax_cosine_decay(t, i, d, a, e)))
        peak, w = init, r.randint(1, 100)
        start = peak * r.choice([0.0, 0.1, 2.0])  # optax allows init > peak
        end = peak * r.choice([0.0, 0.01])
        total = w + r.randint(1, 500)
        cases.append((f"warmup_cosine_decay_schedule({start}, {peak}, {w}, "
                      f"{total}, {end})",
                      {"max_lr": peak, "min_lr": end,
                       "warmup": {"steps": w, "start_lr": start},
                       "cosine": {"period": total - w}}, total + 50,
                      lambda t, s=start, p=peak, w=w, n=total, e=end:
                      A.optax_warmup_cosine_decay(t, s, p, w, n, e)))
        rate, steps = r.choice([0.5, 0.9, 0.99]), r.randint(1, 50)
        stair, floor = r.choice([False, True]), r.choice([None, init * 0.01])
        spec = {"max_lr": init, "exponential_decay": {
            "gamma": rate, "transition_steps": steps, "staircase": stair}}
        if floor is not None:
            spec["min_lr"] = floor
        cases.append((f"exponential_decay({init}, {steps}, {rate}, "
                      f"staircase={stair}, end_value={floor})", spec, 1000,
                      lambda t, i=init, s=steps, g=rate, st=stair, f=floor:
                      A.optax_exponential_decay(t, i, s, g, staircase=st,
                                                end_value=f)))
        end, power = init * r.choice([0.0, 0.1]), r.choice([1.0, 2.0, 0.5])
        cases.append((f"polynomial_schedule({init}, {end}, {power}, {d})",
                      {"max_lr": init, "min_lr": end, "polynomial_decay": {
                          "total_steps": d, "power": power}}, d + 50,
                      lambda t, i=init, e=end, p=power, d=d:
                      A.optax_polynomial(t, i, e, p, d)))
        top = init * r.choice([2.0, 10.0])
        cases.append((f"polynomial_schedule({init}, {top}, {power}, {d}) "
                      "rising",
                      {"max_lr": top, "min_lr": init, "polynomial_decay": {
                          "total_steps": d, "power": power, "rise": True}},
                      d + 50,
                      lambda t, i=init, e=top, p=power, d=d:
                      A.optax_polynomial(t, i, e, p, d)))
        grow = r.choice([1.05, 1.5, 3.0])
        cases.append((f"exponential_decay({init}, {steps}, {grow}, "
                      f"staircase={stair}, end_value={top})",
                      {"max_lr": top, "exponential_decay": {
                          "gamma": grow, "transition_steps": steps,
                          "staircase": stair, "start_lr": init}}, 1000,
                      lambda t, i=init, s=steps, g=grow, st=stair, e=top:
                      A.optax_exponential_decay(t, i, s, g, staircase=st,
                                                end_value=e)))
    check(cases, peak_of=lambda spec: max(
        spec["max_lr"], spec.get("warmup", {}).get("start_lr", 0)))


# --- Hugging Face ---------------------------------------------------------

def test_hf_schedules():
    r = rng("hf")
    cases = []
    for _ in range(12):
        lr, w = r.choice([5e-5, 1e-3, 0.1]), r.randint(0, 100)
        n = w + r.randint(1, 600)
        warm = {"warmup": {"steps": w}} if w else {}
        cases.append((f"get_linear_schedule_with_warmup({w}, {n})",
                      {"max_lr": lr, **warm, "polynomial_decay": {
                          "total_steps": n - w}}, n + 30,
                      lambda t, w=w, n=n, lr=lr:
                      lr * A.hf_linear_with_warmup(t, w, n)))
        cases.append((f"get_cosine_schedule_with_warmup({w}, {n})",
                      {"max_lr": lr, **warm, "cosine": {"period": n - w}},
                      n + 1,  # HF's cosine rises again after N; anneal holds
                      lambda t, w=w, n=n, lr=lr:
                      lr * A.hf_cosine_with_warmup(t, w, n)))
        waves = r.choice([0.25, 1.0, 1.5, 2.0, 0.75])
        cases.append((f"get_cosine_schedule_with_warmup({w}, {n}, "
                      f"num_cycles={waves})",
                      {"max_lr": lr, **warm, "cosine": {"period": n - w,
                                                        "waves": waves}},
                      n + 1,
                      lambda t, w=w, n=n, lr=lr, c=waves:
                      lr * A.hf_cosine_with_warmup(t, w, n, c)))
        hard = r.choice([1, 2, 3, 7, 2.5])
        cases.append((f"get_cosine_with_hard_restarts_schedule_with_warmup("
                      f"{w}, {n}, {hard})",
                      {"max_lr": lr, **warm, "cosine": {
                          "period": n - w, "restart_cycles": hard}}, n + 30,
                      lambda t, w=w, n=n, c=hard, lr=lr:
                      lr * A.hf_cosine_with_hard_restarts(t, w, n, c)))
        cycles = r.randint(1, 5)
        length = r.randint(1, 100)
        n2 = w + cycles * length
        cases.append((f"get_cosine_with_hard_restarts_schedule_with_warmup("
                      f"{w}, {n2}, {cycles})",
                      {"max_lr": lr, **warm, "warm_restarts": {
                          "period": length, "max_cycles": cycles}}, n2 + 30,
                      lambda t, w=w, n=n2, c=cycles, lr=lr:
                      lr * A.hf_cosine_with_hard_restarts(t, w, n, c)))
        end, power = r.choice([1e-7, lr * 0.1]), r.choice([1.0, 2.0, 0.5])
        cases.append((f"get_polynomial_decay_schedule_with_warmup({w}, {n}, "
                      f"{end}, {power})",
                      {"max_lr": lr, "min_lr": end, **warm,
                       "polynomial_decay": {"total_steps": n - w,
                                            "power": power}}, n + 30,
                      lambda t, w=w, n=n, e=end, p=power, lr=lr:
                      lr * A.hf_polynomial_with_warmup(t, w, n, lr, e, p)))
        cases.append((f"get_constant_schedule_with_warmup({w})",
                      {"max_lr": lr, **warm, "constant": {}}, w + 30,
                      lambda t, w=w, lr=lr:
                      lr * A.hf_constant_with_warmup(t, w)))
        ts = w or 10_000
        cases.append((f"get_inverse_sqrt_schedule({w})",
                      {"max_lr": lr, **warm, "inverse_time_decay": {
                          "t0": ts, "power": 0.5}}, 2000,
                      lambda t, w=w, lr=lr: lr * A.hf_inverse_sqrt(t, w)))
        stable, decay = r.randint(0, 200), r.randint(1, 200)
        ratio = r.choice([0.0, 0.1])
        up, down = r.choice(["linear", "cosine", "1-sqrt"]), \
            r.choice(["linear", "cosine", "1-sqrt"])
        shape = {"linear": "LINEAR", "cosine": "COSINE", "1-sqrt": "SQRT"}
        cases.append((f"get_wsd_schedule({w}, {decay}, stable={stable}, "
                      f"{up}, {down}, {ratio})",
                      {"max_lr": lr, "min_lr": ratio * lr, "wsd": {
                          "warmup_steps": w, "stable_steps": stable,
                          "decay_steps": decay, "warmup_shape": shape[up],
                          "decay_shape": shape[down]}}, w + stable + decay + 30,
                      lambda t, w=w, s=stable, d=decay, u=up, dn=down,
                      q=ratio, lr=lr:
                      lr * A.hf_wsd(t, w, s, d, u, dn, q)))
    check(cases)


# The WSD cases anneal could not express before (num_decay_steps = 0,
# num_cycles != 0.5), with every pair of shapes, and the floor snapshot.
WSD_CASES = [
    # (W, S, D, min_lr_ratio, num_cycles)
    (10, 20, 30, 0.0, 0.5),
    (10, 20, 30, 0.1, 0.5),
    (0, 15, 40, 0.05, 0.5),
    (7, 11, 0, 0.0, 0.5),     # num_decay_steps = 0
    (7, 11, 0, 0.2, 0.5),
    (0, 0, 0, 0.3, 0.5),
    (5, 5, 50, 0.0, 1.0),     # a full wave: back up to the peak
    (5, 5, 50, 0.1, 0.25),    # a quarter wave, then the drop to r
    (5, 5, 50, 0.1, 1.75),
    (3, 0, 17, 0.01, 3.3),
]
WSD_SHAPES = {"linear": "LINEAR", "cosine": "COSINE", "1-sqrt": "SQRT"}


@pytest.mark.parametrize("case", WSD_CASES,
                         ids=lambda c: "W%d_S%d_D%d_r%g_nc%g" % c)
def test_hf_wsd_every_shape(case):
    w, s, d, r, nc = case
    lr = 3e-4
    cases = []
    for up, down in itertools.product(WSD_SHAPES, WSD_SHAPES):
        if down != "cosine" and nc != 0.5:
            continue  # HF ignores num_cycles there; anneal refuses it
        wsd = {"warmup_steps": w, "stable_steps": s, "decay_steps": d,
               "warmup_shape": WSD_SHAPES[up], "decay_shape": WSD_SHAPES[down]}
        if down == "cosine" and nc != 0.5:
            wsd["num_cycles"] = nc
        spec = {"max_lr": lr, "min_lr": lr * r, "wsd": wsd}
        cases.append((f"get_wsd_schedule({w}, {d}, stable={s}, {up}, {down}, "
                      f"{r}, num_cycles={nc})", spec, w + s + d + 20,
                      lambda t, up=up, down=down:
                      lr * A.hf_wsd(t, w, s, d, up, down, r, nc)))
        # The snapshot is the floor step W+S+D, where HF returns r.
        rows = preview_rows(spec, w + s + d + 2)
        assert [t for t, row in enumerate(rows) if row["snapshot"]] == \
            [w + s + d], spec
        assert rows[w + s + d + 1]["phase"] == "HOLD", spec
    check(cases)
