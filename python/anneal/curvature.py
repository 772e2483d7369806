"""anneal.curvature: the loss's top Hessian eigenvalue, for the 4/L bound.

The stability bound of docs/analysis.md says a cosine cycle stays stable
while its peak LR is below 4/L, L the largest eigenvalue of the loss's
Hessian. This module estimates L during training and reports it as the
metric `max_curvature`, through AnnealLR.report or a MetricReporter, next
to the loss:

    monitor = CurvatureMonitor(model.parameters(), reporter=scheduler,
                               every=50)
    for x, y in loader:
        loss = loss_fn(model(x), y)
        monitor.maybe_estimate(loss)      # before backward(): needs the graph
        optimizer.zero_grad(); loss.backward()
        optimizer.step(); scheduler.step()

The estimator is power iteration on Hessian-vector products (Pearlmutter's
trick: H v is the gradient of g . v, with g = dL/dtheta taken with
create_graph=True), so the Hessian is never formed. H is the Hessian of the
loss it is given: the minibatch loss, in the loop above. Each estimate
starts from the previous eigenvector (warm start). Cost per estimate: one
gradient with a graph, plus one Hessian-vector product (about two backward
passes) per iteration, at most `iters` of them (10; 20 for the first, cold
one); an estimate stops earlier once its residual is below tol times the
estimate.

The estimate is a Rayleigh quotient v . H v of a unit vector, so it never
exceeds the top eigenvalue: too few iterations err low (a lenient 4/L), not
high. `residual` after an estimate is |H v - lambda v| for the unit vector v
returned: since H is symmetric, some eigenvalue of H lies within `residual`
of the estimate (the Krylov-Weinstein bound).

Power iteration finds the eigenvalue of largest magnitude. If that one is
negative (a saddle, a maximum), a second, shifted power iteration on
H - lambda I finds the largest algebraic eigenvalue, which is what the 4/L
bound is about.
"""

from __future__ import annotations

import math
import warnings
from typing import Any, Callable, Iterable, List, Optional, Sequence, Tuple, Union

import torch

LossLike = Union[torch.Tensor, Callable[[], torch.Tensor]]

METRIC = "max_curvature"


def _flat_dot(a: Sequence[torch.Tensor], b: Sequence[torch.Tensor]) -> float:
    return float(sum(float(torch.sum(x.double() * y.double()))
                     for x, y in zip(a, b)))


def _norm(a: Sequence[torch.Tensor]) -> float:
    return math.sqrt(_flat_dot(a, a))


def _scale(a: Sequence[torch.Tensor], s: float) -> List[torch.Tensor]:
    return [x * s for x in a]


def _check_params(params: Iterable[torch.Tensor]) -> List[torch.Tensor]:
    out = [p for p in params if isinstance(p, torch.Tensor) and p.requires_grad]
    if not out:
        raise ValueError("params: must hold at least one tensor with "
                         "requires_grad=True, got none")
    return out


class _Hvp:
    """H v for the loss whose gradient (with its graph) is `grads`."""

    def __init__(self, loss: torch.Tensor, params: List[torch.Tensor]) -> None:
        if not isinstance(loss, torch.Tensor) or loss.numel() != 1:
            raise ValueError("loss: must be a scalar tensor, got %r" %
                             (type(loss).__name__ if not isinstance(
                                 loss, torch.Tensor) else
                              "a tensor of shape %s" % (tuple(loss.shape),)))
        if not loss.requires_grad:
            raise ValueError("loss: must require grad (computed from params, "
                             "outside torch.no_grad()), got a tensor without "
                             "a graph")
        value = float(loss.detach())
        if not math.isfinite(value):
            raise FloatingPointError("loss: must be finite to estimate the "
                                     "curvature, got %r" % value)
        self.params = params
        try:
            grads = torch.autograd.grad(loss, params, create_graph=True,
                                        allow_unused=True)
        except RuntimeError as e:
            if "backward through the graph a second time" in str(e):
                raise ValueError(
                    "loss: its graph was already freed (call the estimate "
                    "before loss.backward(), or pass a closure that "
                    "recomputes the loss)") from e
            raise
        # A parameter the loss does not use has a zero row in H.
        self.grads = [g if g is not None else torch.zeros_like(p)
                      for g, p in zip(grads, params)]
        self.used = [g is not None and g.requires_grad for g in grads]
        self.products = 0

    def __call__(self, v: Sequence[torch.Tensor]) -> List[torch.Tensor]:
        self.products += 1
        if not any(self.used):  # the loss is linear in params: H = 0
            return [torch.zeros_like(p) for p in self.params]
        gs = [g for g, u in zip(self.grads, self.used) if u]
        vs = [x for x, u in zip(v, self.used) if u]
        ps = [p for p, u in zip(self.params, self.used) if u]
        hv = torch.autograd.grad(gs, ps, grad_outputs=vs, retain_graph=True,
                                 allow_unused=True)
        it = iter(hv)
        out = []
        for p, u in zip(self.params, self.used):
            h = next(it) if u else None
            out.append(torch.zeros_like(p) if h is None else h.detach())
        return out


def _power(hvp: Callable[[Sequence[torch.Tensor]], List[torch.Tensor]],
           v: List[torch.Tensor], iters: int, tol: float, shift: float = 0.0
           ) -> Tuple[float, List[torch.Tensor], float, int]:
    """Power iteration on H - shift I from unit `v`: (Rayleigh quotient of
    H, unit vector, residual |H v - lambda v|, iterations). Stops once the
    residual is at most tol * |lambda|, or after `iters` products."""
    lam = float("nan")
    residual = float("nan")
    for k in range(1, iters + 1):
        hv = hvp(v)
        lam = _flat_dot(v, hv)  # v . H v, |v| = 1
        residual = _norm([h - lam * x for h, x in zip(hv, v)])
        w = [h - shift * x for h, x in zip(hv, v)]
        n = _norm(w)
        if not (math.isfinite(lam) and math.isfinite(n) and
                math.isfinite(residual)):
            raise FloatingPointError(
                "a Hessian-vector product is not finite (iteration %d): the "
                "loss's second derivatives overflow here" % k)
        if n == 0.0 or residual <= tol * abs(lam) or k == iters:
            break
        v = _scale(w, 1.0 / n)
    return lam, v, residual, k


def top_eigenvalue(loss: torch.Tensor, params: Iterable[torch.Tensor], *,
                   iters: int = 20, tol: float = 1e-4,
                   init: Optional[Sequence[torch.Tensor]] = None,
                   generator: Optional[torch.Generator] = None
                   ) -> Tuple[float, List[torch.Tensor], float]:
    """The largest eigenvalue of the Hessian of `loss` with respect to
    `params`, by power iteration on Hessian-vector products.

    Args:
      loss: a scalar tensor whose graph is still alive (before backward()).
      params: the tensors to differentiate by (those with requires_grad).
      iters: at most this many Hessian-vector products per power iteration
        (>= 1).
      tol: stop once the residual |H v - lambda v| is at most tol times
        |lambda| (>= 0; 0: always `iters` products).
      init: the start vector (one tensor per param), e.g. the previous
        eigenvector; default a Gaussian vector from `generator`.
      generator: the random source of the default start vector.

    Returns (eigenvalue, unit eigenvector as one tensor per param,
    residual |H v - eigenvalue v|). Raises FloatingPointError when the
    loss or a product is not finite.
    """
    return _estimate(loss, _check_params(params), iters, tol, init,
                     generator)[:3]


def _estimate(loss: torch.Tensor, params: List[torch.Tensor], iters: int,
              tol: float, init: Optional[Sequence[torch.Tensor]],
              generator: Optional[torch.Generator]
              ) -> Tuple[float, List[torch.Tensor], float, int]:
    if not isinstance(iters, int) or iters < 1:
        raise ValueError("iters: must be an integer >= 1, got %r" % (iters,))
    if not tol >= 0:
        raise ValueError("tol: must be >= 0, got %r" % (tol,))
    hvp = _Hvp(loss, params)
    if init is not None:
        init = list(init)
        if len(init) != len(params) or any(
                a.shape != p.shape for a, p in zip(init, params)):
            raise ValueError("init: must have one tensor per param, with its "
                             "shape, got %d tensors for %d params" %
                             (len(init), len(params)))
        v = [a.detach().to(p.dtype) for a, p in zip(init, params)]
    else:
        v = [torch.randn(p.shape, generator=generator, dtype=p.dtype).to(
            p.device) for p in params]
    n = _norm(v)
    if not (n > 0 and math.isfinite(n)):
        v = [torch.randn(p.shape, generator=generator, dtype=p.dtype).to(
            p.device) for p in params]
        n = _norm(v)
    v = _scale(v, 1.0 / n)
    lam, v, residual, k = _power(hvp, v, iters, tol)
    if lam < 0:
        # The dominant eigenvalue is negative: the top one is the dominant
        # eigenvalue of H - lam I (all of whose eigenvalues are >= 0).
        start = [torch.randn(p.shape, generator=generator, dtype=p.dtype).to(
            p.device) for p in params]
        start = _scale(start, 1.0 / _norm(start))
        top, u, r2, k2 = _power(hvp, start, iters, tol, shift=lam)
        if top > lam:
            lam, v, residual = top, u, r2
        k += k2
    return lam, v, residual, hvp.products


class CurvatureMonitor:
    """Estimates the top Hessian eigenvalue every `every` steps and reports
    it as `max_curvature` (docs/adaptive.md, Helpers for the training loop).

    Args:
      params: the model's parameters (those with requires_grad are used).
      reporter: where to report: an anneal.torch.AnnealLR (its report(),
        at its current step by default), an anneal.MetricReporter (then
        pass step= to maybe_estimate), or None to report nothing.
      every: estimate at steps that are multiples of `every` (>= 1).
      iters: at most this many Hessian-vector products per estimate
        (>= 1); the first estimate uses max(iters, first_iters).
      first_iters: the budget of the first (cold) estimate.
      tol: an estimate stops once its residual is at most tol times the
        estimate (or after its budget of products).
      metric: the metric name reported (default "max_curvature").
      seed: seeds the random start vector.
      nonfinite: "raise" (default) raises FloatingPointError when the loss
        or a product is not finite; "warn" warns, reports nothing, returns
        NaN and forgets the warm start.

    After an estimate: `value`, `residual` (some eigenvalue of H lies
    within it of `value`), `products` (Hessian-vector products it took),
    `estimates` (count).
    """

    def __init__(self, params: Iterable[torch.Tensor], *,
                 reporter: Any = None, every: int = 100, iters: int = 10,
                 first_iters: int = 20, tol: float = 1e-3,
                 metric: str = METRIC, seed: int = 0,
                 nonfinite: str = "raise") -> None:
        self.params = _check_params(params)
        if not isinstance(every, int) or every < 1:
            raise ValueError("every: must be an integer >= 1, got %r" %
                             (every,))
        for name, value in (("iters", iters), ("first_iters", first_iters)):
            if not isinstance(value, int) or value < 1:
                raise ValueError("%s: must be an integer >= 1, got %r" %
                                 (name, value))
        if not tol >= 0:
            raise ValueError("tol: must be >= 0, got %r" % (tol,))
        if nonfinite not in ("raise", "warn"):
            raise ValueError('nonfinite: must be "raise" or "warn", got %r' %
                             (nonfinite,))
        if reporter is not None and not hasattr(reporter, "report"):
            raise ValueError("reporter: must be an AnnealLR, a MetricReporter "
                             "or None, got %s" % type(reporter).__name__)
        if reporter is not None:
            from anneal.reporter import check_metrics
            check_metrics(0, {metric: 0.0})  # the name, checked now
        self.reporter = reporter
        self.every = every
        self.iters = iters
        self.first_iters = first_iters
        self.tol = tol
        self.metric = metric
        self.nonfinite = nonfinite
        self.generator = torch.Generator().manual_seed(seed)
        self.vector: Optional[List[torch.Tensor]] = None
        self.value: Optional[float] = None
        self.residual: Optional[float] = None
        self.products = 0
        self.estimates = 0

    def _default_step(self, step: Optional[int]) -> Optional[int]:
        if step is not None:
            if not isinstance(step, int) or step < 0:
                raise ValueError("step: must be an integer >= 0, got %r" %
                                 (step,))
            return step
        last_epoch = getattr(self.reporter, "last_epoch", None)
        if isinstance(last_epoch, int):
            return last_epoch
        return None

    def due(self, step: int) -> bool:
        """Whether an estimate is due at `step`."""
        return step % self.every == 0

    def maybe_estimate(self, loss: LossLike, step: Optional[int] = None
                       ) -> Optional[float]:
        """Estimates and reports at steps that are multiples of `every`
        (returns the estimate), otherwise returns None at no cost.

        `loss` is the step's loss tensor with its graph (call this before
        loss.backward()), or a closure that computes it (called only when
        an estimate is due). `step` defaults to the AnnealLR's current
        step; it is required with a MetricReporter or no reporter."""
        t = self._default_step(step)
        if t is None:
            raise ValueError("step: required unless the reporter is an "
                             "AnnealLR, got None")
        if not self.due(t):
            return None
        return self.estimate(loss, t)

    def estimate(self, loss: LossLike, step: Optional[int] = None) -> float:
        """Estimates now (whatever the step) and reports it at `step` (by
        default the AnnealLR's current step)."""
        t = self._default_step(step)
        if self.reporter is not None and t is None:
            raise ValueError("step: required with a %s reporter, got None" %
                             type(self.reporter).__name__)
        if callable(loss) and not isinstance(loss, torch.Tensor):
            loss = loss()
        budget = self.iters if self.vector is not None else max(
            self.iters, self.first_iters)
        try:
            lam, v, residual, products = _estimate(
                loss, self.params, budget, self.tol, self.vector,
                self.generator)
        except FloatingPointError as e:
            self.vector = None
            if self.nonfinite == "raise":
                raise
            warnings.warn("anneal: no curvature estimate at step %s: %s" %
                          (t, e), RuntimeWarning, stacklevel=2)
            return float("nan")
        self.vector = [x.detach() for x in v]
        self.value = lam
        self.residual = residual
        self.products = products
        self.estimates += 1
        if self.reporter is not None:
            if hasattr(self.reporter, "last_epoch"):  # AnnealLR
                self.reporter.report({self.metric: lam}, step=t)
            else:  # MetricReporter
                self.reporter.report(t, {self.metric: lam})
        return lam
