"""The anchor libraries' LR formulas, transcribed in float64 from their sources,
for tests/python/test_anchor_conformance.py.

Each function is the library's own arithmetic, operation for operation, with
the file and commit it was read from. The one deliberate change: where a
library finds the cycle with floor(log(...)), these find it by comparing with
the cycle starts (`_cycle_of`), because the log misplaces restarts (timm
T_0=1, cycle_mul=3, t=121 falls in cycle 4 instead of 5) and anneal promises
the exact cycle (docs/conventions.md). Everything else, including where the
libraries disagree with each other, is theirs.

Sources:
  timm   huggingface/pytorch-image-models @ aa4b5850, timm/scheduler/cosine_lr.py;
         @ 23f09af0, timm/scheduler/poly_lr.py; @ 0d4c04f3,
         timm/scheduler/tanh_lr.py; @ 12d9a6d4, timm/scheduler/scheduler.py
         (Scheduler._add_noise)
  keras  keras-team/keras @ 3422977a,
         keras/src/optimizers/schedules/learning_rate_schedule.py
  optax  google-deepmind/optax @ 2edbcbe2, optax/schedules/_schedule.py
  hf     huggingface/transformers @ 005edacb, src/transformers/optimization.py
The step convention is anneal's for all four: the value for optimizer update
t (timm's step_update(num_updates) after the increment, optax's count before
it, HF's LambdaLR step, Keras's iterations).
"""

from __future__ import annotations

import math


def _cycle_of(t: float, start_of, limit: float = math.inf) -> int:
    """The last cycle i with start_of(i) <= t (geometric starts), at most
    `limit` (a shrinking period's starts converge: past their limit every
    later cycle has begun)."""
    i = 0
    while i < limit and start_of(i + 1) <= t:
        i += 1
    return i


# --- timm: CosineLRScheduler._get_lr -------------------------------------

def timm_cosine(t, base, t_initial, lr_min=0.0, cycle_mul=1.0, cycle_decay=1.0,
                cycle_limit=1, warmup_t=0, warmup_lr_init=0.0,
                warmup_prefix=False, k_decay=1.0):
    if t < warmup_t:
        return warmup_lr_init + t * ((base - warmup_lr_init) / warmup_t)
    if warmup_prefix:
        t = t - warmup_t
    # timm: i = floor(log(1 - t / t_initial * (1 - cycle_mul), cycle_mul))
    i, t_i, t_curr = _timm_cycle(t, t_initial, cycle_mul, cycle_limit)
    gamma = cycle_decay ** i
    lr_max = base * gamma
    k = k_decay
    if i < cycle_limit:
        return lr_min + 0.5 * (lr_max - lr_min) * (
            1 + math.cos(math.pi * t_curr ** k / t_i ** k))
    return lr_min


def _timm_cycle(t, t_initial, cycle_mul, cycle_limit):
    """timm's (i, t_i, t_curr), with the exact cycle index."""
    if cycle_mul != 1:
        i = _cycle_of(t, lambda j: (1 - cycle_mul ** j) /
                      (1 - cycle_mul) * t_initial, cycle_limit)
        t_i = cycle_mul ** i * t_initial
        t_curr = t - (1 - cycle_mul ** i) / (1 - cycle_mul) * t_initial
    else:
        i = t // t_initial
        t_i = t_initial
        t_curr = t - (t_initial * i)
    return i, t_i, t_curr


def timm_poly(t, base, t_initial, power=0.5, lr_min=0.0, cycle_mul=1.0,
              cycle_decay=1.0, cycle_limit=1, warmup_t=0, warmup_lr_init=0.0,
              warmup_prefix=False, k_decay=1.0):
    """timm/scheduler/poly_lr.py PolyLRScheduler._get_lr."""
    if t < warmup_t:
        return warmup_lr_init + t * ((base - warmup_lr_init) / warmup_t)
    if warmup_prefix:
        t = t - warmup_t
    i, t_i, t_curr = _timm_cycle(t, t_initial, cycle_mul, cycle_limit)
    lr_max = base * cycle_decay ** i
    k = k_decay
    if i < cycle_limit:
        return lr_min + (lr_max - lr_min) * (1 - t_curr ** k / t_i ** k) ** power
    return lr_min


def timm_tanh(t, base, t_initial, lb=-7.0, ub=3.0, lr_min=0.0, cycle_mul=1.0,
              cycle_decay=1.0, cycle_limit=1, warmup_t=0, warmup_lr_init=0.0,
              warmup_prefix=False):
    """timm/scheduler/tanh_lr.py TanhLRScheduler._get_lr; its warmup aims at
    base (prefix) or at the schedule's own value at warmup_t (overlap)."""
    def get_lr(t):
        if warmup_prefix:
            t = t - warmup_t
        i, t_i, t_curr = _timm_cycle(t, t_initial, cycle_mul, cycle_limit)
        if i < cycle_limit:
            lr_max = base * cycle_decay ** i
            tr = t_curr / t_i
            return lr_min + 0.5 * (lr_max - lr_min) * (
                1 - math.tanh(lb * (1. - tr) + ub * tr))
        return lr_min
    if t < warmup_t:
        target = base if warmup_prefix else get_lr(warmup_t)
        return warmup_lr_init + t * ((target - warmup_lr_init) / warmup_t)
    return get_lr(t)


def timm_add_noise(lr, t, noise_range_t, noise_pct=0.67, noise_type="normal",
                   noise_seed=42):
    """timm/scheduler/scheduler.py Scheduler._add_noise, with torch's own
    generator (so the test runs PyTorch's CPU generator itself)."""
    import torch
    if isinstance(noise_range_t, (list, tuple)):
        apply_noise = noise_range_t[0] <= t < noise_range_t[1]
    else:
        apply_noise = t >= noise_range_t
    if not apply_noise:
        return lr
    g = torch.Generator()
    g.manual_seed(noise_seed + t)
    if noise_type == "normal":
        while True:
            noise = torch.randn(1, generator=g).item()
            if abs(noise) < noise_pct:
                break
    else:
        noise = 2 * (torch.rand(1, generator=g).item() - 0.5) * noise_pct
    return lr + lr * noise


# --- Keras ---------------------------------------------------------------

def keras_cosine_decay_restarts(t, initial_learning_rate, first_decay_steps,
                                t_mul=2.0, m_mul=1.0, alpha=0.0):
    completed_fraction = t / first_decay_steps
    if t_mul == 1.0:
        i_restart = math.floor(completed_fraction)
        completed_fraction -= i_restart
    else:
        # Keras: floor(log(1 - completed_fraction * (1 - t_mul)) / log(t_mul))
        i_restart = _cycle_of(completed_fraction,
                              lambda j: (1.0 - t_mul ** j) / (1.0 - t_mul))
        sum_r = (1.0 - t_mul ** i_restart) / (1.0 - t_mul)
        completed_fraction = (completed_fraction - sum_r) / t_mul ** i_restart
    m_fac = m_mul ** i_restart
    cosine_decayed = 0.5 * m_fac * (1.0 + math.cos(math.pi * completed_fraction))
    decayed = (1 - alpha) * cosine_decayed + alpha
    return initial_learning_rate * decayed


def keras_cosine_decay(t, initial_learning_rate, decay_steps, alpha=0.0,
                       warmup_target=None, warmup_steps=0):
    def decay(step, decay_from_lr):
        completed_fraction = step / decay_steps
        cosine_decayed = 0.5 * (1.0 + math.cos(math.pi * completed_fraction))
        decayed = (1 - alpha) * cosine_decayed + alpha
        return decay_from_lr * decayed
    if warmup_target is None:
        return decay(min(t, decay_steps), initial_learning_rate)
    step = min(t, decay_steps + warmup_steps)
    if step < warmup_steps:
        completed_fraction = step / warmup_steps
        total_step_delta = warmup_target - initial_learning_rate
        return total_step_delta * completed_fraction + initial_learning_rate
    return decay(step - warmup_steps, warmup_target)


def keras_exponential_decay(t, initial_learning_rate, decay_steps, decay_rate,
                            staircase=False):
    p = t / decay_steps
    if staircase:
        p = math.floor(p)
    return initial_learning_rate * decay_rate ** p


def keras_inverse_time_decay(t, initial_learning_rate, decay_steps, decay_rate,
                             staircase=False):
    p = t / decay_steps
    if staircase:
        p = math.floor(p)
    return initial_learning_rate / (1 + decay_rate * p)


def keras_polynomial_decay(t, initial_learning_rate, decay_steps,
                           end_learning_rate=0.0001, power=1.0, cycle=False):
    step = t
    if cycle:
        multiplier = 1.0 if step == 0 else math.ceil(step / decay_steps)
        decay_steps = decay_steps * multiplier
    else:
        step = min(step, decay_steps)
    p = step / decay_steps
    return ((initial_learning_rate - end_learning_rate) * (1 - p) ** power
            + end_learning_rate)


# --- optax ---------------------------------------------------------------

def optax_cosine_decay(t, init_value, decay_steps, alpha=0.0, exponent=1.0):
    count = min(t, decay_steps)
    cosine_decay = 0.5 * (1 + math.cos(math.pi * count / decay_steps))
    decayed = (1 - alpha) * cosine_decay ** exponent + alpha
    return init_value * decayed


def optax_polynomial(t, init_value, end_value, power, transition_steps,
                     transition_begin=0):
    count = min(max(t - transition_begin, 0), transition_steps)
    frac = 1 - count / transition_steps
    return (init_value - end_value) * (frac ** power) + end_value


def optax_linear(t, init_value, end_value, transition_steps,
                 transition_begin=0):
    return optax_polynomial(t, init_value, end_value, 1, transition_steps,
                            transition_begin)


def optax_exponential_decay(t, init_value, transition_steps, decay_rate,
                            transition_begin=0, staircase=False,
                            end_value=None):
    count = t - transition_begin
    p = count / transition_steps
    if staircase:
        p = math.floor(p)
    decayed = init_value * decay_rate ** p if count > 0 else init_value
    if end_value is not None:
        decayed = (max(decayed, end_value) if decay_rate < 1
                   else min(decayed, end_value))
    return decayed


def optax_warmup_cosine_decay(t, init_value, peak_value, warmup_steps,
                              decay_steps, end_value=0.0, exponent=1.0):
    alpha = 0.0 if peak_value == 0.0 else end_value / peak_value
    if t < warmup_steps:
        return optax_linear(t, init_value, peak_value, warmup_steps)
    return optax_cosine_decay(t - warmup_steps, peak_value,
                              decay_steps - warmup_steps, alpha, exponent)


# --- Hugging Face (factors of the initial LR) ----------------------------

def hf_linear_with_warmup(t, w, n):
    if t < w:
        return t / max(1, w)
    return max(0.0, (n - t) / max(1, n - w))


def hf_cosine_with_warmup(t, w, n, num_cycles=0.5):
    if t < w:
        return t / max(1, w)
    progress = (t - w) / max(1, n - w)
    return max(0.0, 0.5 * (1.0 + math.cos(math.pi * num_cycles * 2.0 * progress)))


def hf_cosine_with_hard_restarts(t, w, n, num_cycles=1):
    if t < w:
        return t / max(1, w)
    progress = (t - w) / max(1, n - w)
    if progress >= 1.0:
        return 0.0
    return max(0.0, 0.5 * (1.0 + math.cos(
        math.pi * ((num_cycles * progress) % 1.0))))


def hf_polynomial_with_warmup(t, w, n, lr_init, lr_end=1e-7, power=1.0):
    if t < w:
        return t / max(1, w)
    if t > n:
        return lr_end / lr_init
    lr_range = lr_init - lr_end
    decay_steps = n - w
    pct_remaining = 1 - (t - w) / decay_steps
    decay = lr_range * pct_remaining ** power + lr_end
    return decay / lr_init


def hf_constant_with_warmup(t, w):
    if t < w:
        return t / max(1.0, w)
    return 1.0


def hf_inverse_sqrt(t, w, timescale=None):
    if timescale is None:
        timescale = w or 10_000
    if t < w:
        return t / max(1, w)
    shift = timescale - w
    return 1.0 / math.sqrt((t + shift) / timescale)


def hf_wsd(t, w, stable, decay, warmup_type="linear", decay_type="cosine",
           min_lr_ratio=0.0, num_cycles=0.5):
    if t < w:
        progress = t / max(1, w)
        if warmup_type == "linear":
            factor = progress
        elif warmup_type == "cosine":
            factor = 0.5 * (1.0 - math.cos(math.pi * progress))
        else:  # 1-sqrt
            factor = 1.0 - math.sqrt(1.0 - progress)
        factor = factor * (1.0 - min_lr_ratio) + min_lr_ratio
        return max(0.0, factor)
    if t < w + stable:
        return 1.0
    if t < w + stable + decay:
        progress = (t - w - stable) / max(1, decay)
        if decay_type == "linear":
            factor = 1.0 - progress
        elif decay_type == "cosine":
            factor = 0.5 * (1.0 + math.cos(math.pi * float(num_cycles) * 2.0 *
                                           progress))
        else:  # 1-sqrt
            factor = 1.0 - math.sqrt(progress)
        factor = factor * (1.0 - min_lr_ratio) + min_lr_ratio
        return max(0.0, factor)
    return min_lr_ratio


# --- for tests/python/test_importers.py ------------------------------------
# timm @ 16664ea3, timm/scheduler/step_lr.py; @ 0514e98d, multistep_lr.py.
# Both default to warmup_prefix=True.

def timm_step(t, base, decay_t, decay_rate=1.0, warmup_t=0,
              warmup_lr_init=0.0, warmup_prefix=True):
    if t < warmup_t:
        return warmup_lr_init + t * ((base - warmup_lr_init) / warmup_t)
    if warmup_prefix:
        t = t - warmup_t
    return base * (decay_rate ** (t // decay_t))


def timm_multistep(t, base, decay_t, decay_rate=1.0, warmup_t=0,
                   warmup_lr_init=0.0, warmup_prefix=True):
    import bisect
    if t < warmup_t:
        return warmup_lr_init + t * ((base - warmup_lr_init) / warmup_t)
    if warmup_prefix:
        t = t - warmup_t
    return base * (decay_rate ** bisect.bisect_right(decay_t, t))


# optax @ 2edbcbe2, optax/schedules/_schedule.py piecewise_constant_schedule
# and _join.py join_schedules (under sgdr_schedule).

def optax_piecewise_constant(t, init_value, boundaries_and_scales):
    v = init_value
    for threshold, scale in sorted(boundaries_and_scales.items()):
        indicator = max(0.0, math.copysign(1.0, threshold - t)
                        if threshold != t else 0.0)
        v = v * indicator + (1 - indicator) * scale * v
    return v


def optax_sgdr(t, cosine_kwargs):
    boundary = 0
    for i, kw in enumerate(cosine_kwargs):
        last = i == len(cosine_kwargs) - 1
        if last or t < boundary + kw["decay_steps"]:
            return optax_warmup_cosine_decay(t - boundary, **kw)
        boundary += kw["decay_steps"]


# keras @ 3422977a, learning_rate_schedule.py PiecewiseConstantDecay.

def keras_piecewise_constant(t, boundaries, values):
    for b, v in zip(boundaries, values):
        if t <= b:
            return v
    return values[-1]


# DeepSpeed @ 22779f2c, deepspeed/runtime/lr_schedules.py WarmupLR and
# WarmupDecayLR, driven as its engine drives them: built with
# last_batch_iteration=-1 (which applies get_lr() at -1), then step() after
# every update, so update u runs at f(u - 1).

def deepspeed_warmup(u, warmup_min_lr=0.0, warmup_max_lr=0.001,
                     warmup_num_steps=1000, warmup_type="log",
                     total_num_steps=None):
    t = u - 1
    if t < 0:
        return warmup_min_lr
    w = max(2, warmup_num_steps)
    inverse_log_warm_up = 1.0 / math.log(w)
    if t < w:
        if warmup_type == "log":
            gamma = inverse_log_warm_up * math.log(t + 1)
        else:
            gamma = t / w
    elif total_num_steps is None:
        gamma = 1.0
    else:
        gamma = max(0.0, float(total_num_steps - t) /
                    float(max(1.0, total_num_steps - w)))
    return warmup_min_lr + ((warmup_max_lr - warmup_min_lr) * gamma)
