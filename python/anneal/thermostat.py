"""anneal.thermostat.GradientNoise: the thermostat's gradient noise, injected.

With `thermostat {target_update_norm_sq: K}` in the spec, the server answers
a query carrying |g|^2 and the parameter count d with noise_std, the sigma
of isotropic Gaussian gradient noise that keeps E|delta theta|^2 = K under
SGD (docs/conventions.md, Batch size and thermostat; the Thermostat message
of proto/anneal/v1/schedule.proto):

    sigma = sqrt(max(0, K - lr^2 |g|^2)) / (lr sqrt(d)) * sqrt(1 - beta^2)

with beta the SGD momentum (the spec's scheduled momentum, else
thermostat.momentum; 0 for plain SGD). This hook asks for it and adds it:

    noise = GradientNoise(scheduler)          # scheduler: an AnnealLR
    for x, y in loader:
        optimizer.zero_grad(); loss_fn(model(x), y).backward()
        noise.apply()                         # after backward, before step
        optimizer.step(); scheduler.step()

It is opt-in: AnnealLR does nothing of the kind by itself, and an AnnealLR
used without this hook behaves exactly as before. Each apply() is one
blocking Evaluate call (about 1 ms; ranges carry no noise, since it depends
on |g|^2), one pass over the gradients and one Gaussian draw per parameter.

What it passes as |g|^2 is the squared norm of the noise-free update
direction: the gradient plus weight decay (weight_decay * theta, as SGD adds
it), and with momentum the noise-free momentum buffer, which the hook keeps
alongside the optimizer's (reset with it on an AnnealLR restart), as
docs/conventions.md asks. With momentum the rule is a steady-state one: just
after a restart, or while the LR moves fast compared with 1/(1 - beta)
steps, E|delta theta|^2 is below K. Not for Adam and its relatives (their
update is normalised, so the formula does not apply): they are refused.
"""

from __future__ import annotations

import math
import warnings
from typing import Dict, Iterable, List, Optional

import torch

from anneal.torch import AnnealLR


class GradientNoise:
    """Adds the served thermostat noise to the gradients of `params`.

    Args:
      scheduler: the AnnealLR of a schedule whose spec has `thermostat`.
      params: the parameters to perturb (default: every parameter of the
        scheduler's optimizer). d, the parameter count sent, is the number
        of their elements that have a gradient.
      seed: seeds the noise's torch.Generator (reproducible runs).
      generator: or the generator to draw from (on the CPU).

    After apply(): `sigma` (the noise std used), `grad_norm_sq` (the |g|^2
    sent), `num_params` (the d sent), `calls`.
    """

    def __init__(self, scheduler: AnnealLR,
                 params: Optional[Iterable[torch.Tensor]] = None, *,
                 seed: int = 0,
                 generator: Optional[torch.Generator] = None) -> None:
        if not isinstance(scheduler, AnnealLR):
            raise ValueError("scheduler: must be an anneal.torch.AnnealLR, "
                             "got %s" % type(scheduler).__name__)
        optimizer = scheduler.optimizer
        defaults = optimizer.defaults
        if "betas" in defaults or "momentum" not in defaults:
            raise ValueError(
                "optimizer: the thermostat's noise_std is derived for SGD "
                "(the update is lr times the gradient); %s normalises or "
                "reshapes its update, so it does not apply "
                "(docs/conventions.md), got %s" %
                (type(optimizer).__name__, type(optimizer).__name__))
        for i, group in enumerate(optimizer.param_groups):
            if group.get("nesterov"):
                raise ValueError("optimizer.param_groups[%d].nesterov: must "
                                 "be False for the thermostat, got True" % i)
            if group.get("dampening", 0) != 0:
                raise ValueError("optimizer.param_groups[%d].dampening: must "
                                 "be 0 for the thermostat, got %r" %
                                 (i, group["dampening"]))
        info = scheduler.client.get(scheduler.schedule,
                                    timeout=scheduler.rpc_timeout)
        spec = info.spec
        if not spec.HasField("thermostat"):
            raise ValueError("scheduler: %s has no thermostat in its spec, so "
                             "the server serves no noise_std" %
                             scheduler.schedule)
        if not spec.HasField("momentum"):
            beta = spec.thermostat.momentum
            for i, group in enumerate(optimizer.param_groups):
                if group.get("momentum", 0.0) != beta:
                    raise ValueError(
                        "optimizer.param_groups[%d].momentum: must equal the "
                        "spec's thermostat.momentum (%r), which the served "
                        "noise_std assumes, got %r" %
                        (i, beta, group.get("momentum", 0.0)))
        served = scheduler.last_result.lr
        if any(lr != served for lr in scheduler.get_last_lr()):
            warnings.warn(
                "anneal: a param group of %s has an LR other than the served "
                "one (its base differs from max_lr); the thermostat's target "
                "K holds only for updates at the served LR" %
                scheduler.schedule, stacklevel=2)
        self.scheduler = scheduler
        self.optimizer = optimizer
        if params is None:
            self.params = [p for g in optimizer.param_groups
                           for p in g["params"]]
        else:
            self.params = list(params)
        if not self.params:
            raise ValueError("params: must hold at least one parameter, got "
                             "none")
        known = {id(p): g for g in optimizer.param_groups for p in g["params"]}
        missing = [i for i, p in enumerate(self.params) if id(p) not in known]
        if missing:
            raise ValueError("params[%d]: must be a parameter of the "
                             "scheduler's optimizer" % missing[0])
        self._group = known
        self.generator = (generator if generator is not None else
                          torch.Generator().manual_seed(seed))
        # The noise-free momentum buffers, by parameter id.
        self._clean: Dict[int, torch.Tensor] = {}
        self._reset_at: Optional[int] = None
        self.sigma: Optional[float] = None
        self.grad_norm_sq: Optional[float] = None
        self.num_params: Optional[int] = None
        self.calls = 0

    def apply(self) -> float:
        """Adds N(0, sigma^2) to every gradient, sigma served for the
        current step and this step's |g|^2; returns sigma. Call it after
        loss.backward() and before optimizer.step(). Raises
        FloatingPointError, adding nothing, when |g|^2 is not finite."""
        sched = self.scheduler
        step = sched.last_epoch
        if (sched.reset_momentum and self._clean and
                self._reset_at != step and sched.last_result.restart):
            self._clean.clear()  # AnnealLR zeroed the optimizer's buffers
            self._reset_at = step
        with torch.no_grad():
            directions: List[torch.Tensor] = []
            grads: List[torch.Tensor] = []
            total = 0.0
            d = 0
            for p in self.params:
                if p.grad is None:
                    continue
                group = self._group[id(p)]
                direction = p.grad
                wd = group.get("weight_decay", 0)
                if wd:
                    direction = direction.add(p, alpha=wd)
                beta = group.get("momentum", 0)
                if beta:
                    buf = self._clean.get(id(p))
                    direction = (direction.clone() if buf is None else
                                 buf.mul(beta).add_(direction))
                directions.append(direction)
                grads.append(p.grad)
                total += float(torch.sum(direction.double() ** 2))
                d += p.grad.numel()
            if d == 0:
                raise ValueError("params: none has a gradient (call apply() "
                                 "after loss.backward())")
            if not math.isfinite(total):
                raise FloatingPointError(
                    "grad_norm_sq: must be finite, got %r at step %d (no "
                    "noise added)" % (total, step))
            sigma = sched.noise_std(total, d)
            if sigma is None:
                raise ValueError("scheduler: %s served no noise_std (its spec "
                                 "has no thermostat)" % sched.schedule)
            if not math.isfinite(sigma):
                raise FloatingPointError("noise_std: served %r at step %d (no "
                                         "noise added)" % (sigma, step))
            if sigma > 0:
                for g in grads:
                    noise = torch.randn(g.shape, generator=self.generator,
                                        dtype=g.dtype)
                    g.add_(noise.to(g.device), alpha=sigma)
            # Keep the noise-free buffers of the momentum groups.
            i = 0
            for p in self.params:
                if p.grad is None:
                    continue
                if self._group[id(p)].get("momentum", 0):
                    self._clean[id(p)] = directions[i]
                i += 1
        self.sigma = sigma
        self.grad_norm_sq = total
        self.num_params = d
        self.calls += 1
        return sigma
