"""anneal.adam.ExactAdam: Adam with a time-varying beta1 and its exact
first-moment bias correction, as anneal serves them.

Stock torch.optim.Adam divides exp_avg by 1 - beta1**k, which assumes beta1
never changed (and that exp_avg was never zeroed). When a schedule cycles
beta1 (`momentum {base, max}`), the right divisor is

    1 - prod_{i=1..k} beta1_i             (exp_avg kept across restarts)
    1 - prod_{i=r..k} beta1_i             (exp_avg zeroed at restart step r)

which anneal serves with every step as `beta1_bias_correction` (the second
form with `momentum {restart_bias_correction: true}`; docs/conventions.md).
ExactAdam is Adam with that divisor. ExactBiasCorrection gives a stock
torch.optim.Adam (or AdamW) the same divisor by scaling each group's lr for
the length of one step() (below). ExactAdam:

    optimizer = ExactAdam(model.parameters(), lr=1e-3)
    scheduler = AnnealLR(optimizer, "llm-1", client=client,
                         reset_exp_avg=True)   # spec: restart_bias_correction

AnnealLR writes each group's `betas[0]` and `beta1_bias_correction` before
every update; ExactAdam reads them. A group without `beta1_bias_correction`
(a schedule without momentum, or no AnnealLR) uses the product of the beta1
values it has seen itself, which for a constant beta1 is stock Adam's
1 - beta1**k. Everything else (exp_avg_sq, its 1 - beta2**k, eps, L2
weight_decay) is torch.optim.Adam's, operation for operation, so with a
constant beta1 ExactAdam and Adam differ only by the rounding of
1 - prod(beta1) against 1 - beta1**k.

With a stock optimizer, wrap it and call the wrapper's step():

    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    scheduler = AnnealLR(optimizer, "llm-1", client=client,
                         reset_exp_avg=True)
    exact = ExactBiasCorrection(optimizer)
    ...
    loss.backward(); exact.step(); scheduler.step()

Stock Adam's k-th update is lr * m / (1 - beta1**k) / denom with beta1 the
group's current betas[0]; run with lr * (1 - beta1**k) / c, where c is the
exact correction, it is lr * m / c / denom, the exact update (to rounding).
"""

from __future__ import annotations

import math
from typing import Any, Callable, Iterable, Optional, Tuple

import torch
from torch.optim import Optimizer

# The key both optimizers keep the running beta1 product under (per
# parameter, in optimizer.state). AnnealLR resets it to 1.0 where it zeroes
# exp_avg, so the product restarts with the moment it divides.
BETA1_PRODUCT = "beta1_product"


class ExactAdam(Optimizer):
    """Adam whose first-moment correction is the group's
    `beta1_bias_correction` when set (AnnealLR sets it), else the running
    product of the beta1 values used."""

    def __init__(self, params: Iterable[Any], lr: float = 1e-3,
                 betas: Tuple[float, float] = (0.9, 0.999), eps: float = 1e-8,
                 weight_decay: float = 0.0) -> None:
        if not 0.0 <= lr:
            raise ValueError("lr: must be >= 0, got %r" % lr)
        if not 0.0 <= eps:
            raise ValueError("eps: must be >= 0, got %r" % eps)
        for i, b in enumerate(betas):
            if not 0.0 <= b < 1.0:
                raise ValueError("betas[%d]: must be in [0, 1), got %r" %
                                 (i, b))
        if not 0.0 <= weight_decay:
            raise ValueError("weight_decay: must be >= 0, got %r" %
                             weight_decay)
        defaults = dict(lr=lr, betas=tuple(betas), eps=eps,
                        weight_decay=weight_decay, beta1_bias_correction=None)
        super().__init__(params, defaults)

    @torch.no_grad()
    def step(self, closure: Optional[Callable[[], float]] = None
             ) -> Optional[float]:
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            beta1, beta2 = group["betas"]
            served = group.get("beta1_bias_correction")
            for p in group["params"]:
                if p.grad is None:
                    continue
                grad = p.grad
                if grad.is_sparse:
                    raise RuntimeError("ExactAdam does not support sparse "
                                       "gradients")
                state = self.state[p]
                if not state:
                    state["step"] = 0
                    state[BETA1_PRODUCT] = 1.0
                    state["exp_avg"] = torch.zeros_like(
                        p, memory_format=torch.preserve_format)
                    state["exp_avg_sq"] = torch.zeros_like(
                        p, memory_format=torch.preserve_format)
                exp_avg, exp_avg_sq = state["exp_avg"], state["exp_avg_sq"]
                state["step"] += 1
                state[BETA1_PRODUCT] *= beta1
                if group["weight_decay"] != 0:
                    grad = grad.add(p, alpha=group["weight_decay"])
                exp_avg.mul_(beta1).add_(grad, alpha=1 - beta1)
                exp_avg_sq.mul_(beta2).addcmul_(grad, grad.conj(),
                                                value=1 - beta2)
                bias_correction1 = (served if served is not None
                                    else 1 - state["beta1_product"])
                bias_correction2 = 1 - beta2 ** state["step"]
                step_size = group["lr"] / bias_correction1
                denom = (exp_avg_sq.sqrt() /
                         math.sqrt(bias_correction2)).add_(group["eps"])
                p.addcdiv_(exp_avg, denom, value=-step_size)
        return loss


class ExactBiasCorrection:
    """Wraps a stock torch.optim.Adam or AdamW so that its first-moment bias
    correction is the exact one: the group's `beta1_bias_correction` when
    set (AnnealLR sets it from the served schedule), else the product of the
    beta1 values used since exp_avg was last zeroed.

    Call step() on the wrapper instead of the optimizer; everything else
    (zero_grad, state_dict, param_groups) is the optimizer's own. Each
    group's lr is scaled for the length of one step and put back after it,
    so a scheduler reading or writing lr sees its own values.
    """

    def __init__(self, optimizer: Optimizer) -> None:
        for i, group in enumerate(optimizer.param_groups):
            if "betas" not in group:
                raise ValueError(
                    "param_groups[%d]: ExactBiasCorrection needs an "
                    "optimizer with betas (Adam, AdamW), got %s" %
                    (i, type(optimizer).__name__))
            for option in ("capturable", "fused"):
                if group.get(option):
                    raise ValueError(
                        "param_groups[%d].%s: must be false for "
                        "ExactBiasCorrection (the step count lives on the "
                        "device), got True" % (i, option))
        self.optimizer = optimizer

    def __getattr__(self, name: str) -> Any:
        return getattr(self.optimizer, name)

    def step(self, closure: Optional[Callable[[], float]] = None
             ) -> Optional[float]:
        loss = None
        if closure is not None:  # the gradients first: they pick the params
            with torch.enable_grad():
                loss = closure()
        saved = [group["lr"] for group in self.optimizer.param_groups]
        try:
            products = self._scale_lrs()
            self.optimizer.step()
            # Written after the step: stock Adam sets up a parameter's state
            # only while it is empty.
            for p, product in products:
                self.optimizer.state[p][BETA1_PRODUCT] = product
        finally:
            for group, lr in zip(self.optimizer.param_groups, saved):
                group["lr"] = lr
        return loss

    def _scale_lrs(self) -> list:
        """Scales each group's lr for the coming step; returns each
        parameter's beta1 product after it."""
        products = []
        for i, group in enumerate(self.optimizer.param_groups):
            beta1 = group["betas"][0]
            params = [p for p in group["params"] if p.grad is not None]
            if not params:
                continue
            k = {self._next_step(p) for p in params}
            if len(k) != 1:
                raise RuntimeError(
                    "param_groups[%d]: its parameters have taken different "
                    "numbers of steps (%s), so one lr cannot correct them "
                    "all; use anneal.adam.ExactAdam" % (i, sorted(k)[:4]))
            state = self.optimizer.state
            product = 1.0
            for p in params:
                product = state[p].get(BETA1_PRODUCT, 1.0) * beta1
                products.append((p, product))
            served = group.get("beta1_bias_correction")
            exact = served if served is not None else 1 - product
            group["lr"] = group["lr"] * (1 - beta1 ** k.pop()) / exact
        return products

    def _next_step(self, p: torch.Tensor) -> int:
        """The step count stock Adam uses for p's coming update."""
        step = self.optimizer.state[p].get("step", 0)
        return int(step.item() if isinstance(step, torch.Tensor) else step) + 1
