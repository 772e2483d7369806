"""anneal.lr_range_test: run Leslie Smith's LR range test on a served sweep.

The sweep is an anneal schedule whose LR grows exponentially from A to B
over N steps, created beforehand (`annealctl lr-range-test create NAME
--min-lr A --max-lr B --steps N`, or any spec of that shape, e.g.
`{max_lr: B, exponential_decay: {gamma: (B/A)^(1/(N-1)), start_lr: A}}`).
run() trains on it for up to N steps, reports the loss of every step to the
server (metric `loss`, through AnnealLR.report), stops early once the loss
diverges, and returns the (lr, loss) curve:

    from anneal import lr_range_test
    result = lr_range_test.run(model, optimizer, loss_fn, loader,
                               schedule="digits-lrrt", steps=100)
    result.curve        # [(lr, loss), ...], one per step run

The suggestion of an LR from the curve is the server's (Diagnose); this
module only runs the test and reports.

Step t computes the loss of the model after t updates on the next batch,
records (lr(t), loss), reports the loss at step t, and then (unless it
stopped) makes the update with lr(t). The rule for stopping, checked after
each step is recorded:

* "nonfinite": the loss is NaN or infinite (that step is recorded and
  reported as it is, and no update is made with it);
* "diverged": the smoothed loss exceeds `diverge_factor` (default 4) times
  the lowest smoothed loss so far. The smoothed loss is the bias-corrected
  exponential moving average with factor `smoothing` (default 0.9; 0 uses
  the raw loss), as fastai's range test smooths;
* "batches_exhausted": `batches` ran out (an iterator; a re-iterable such
  as a DataLoader or a list is iterated again instead);
* None: all N steps ran.

By default the model and the optimizer are restored afterwards (restore=
True), since the test's last steps are at LRs that wreck the weights.
"""

from __future__ import annotations

import copy
import math
import warnings
from dataclasses import dataclass, field
from typing import (Any, Callable, Iterable, Iterator, List, Optional,
                    Tuple)

import torch

from anneal.client import Client, schedule_name
from anneal.reporter import check_metrics
from anneal.torch import AnnealLR

STOP_NONFINITE = "nonfinite"
STOP_DIVERGED = "diverged"
STOP_EXHAUSTED = "batches_exhausted"


@dataclass
class RangeTestResult:
    """What run() measured.

    lrs[t], losses[t], smoothed[t]: step t's LR (param group 0's, the
    served one), raw loss and smoothed loss. `stopped` is why it stopped
    early (STOP_NONFINITE, STOP_DIVERGED, STOP_EXHAUSTED) or None.
    """

    schedule: str
    steps: int  # the N asked for
    lrs: List[float] = field(default_factory=list)
    losses: List[float] = field(default_factory=list)
    smoothed: List[float] = field(default_factory=list)
    stopped: Optional[str] = None
    best_loss: float = math.inf   # the lowest smoothed loss
    best_step: Optional[int] = None

    @property
    def curve(self) -> List[Tuple[float, float]]:
        """(lr, raw loss) per step run."""
        return list(zip(self.lrs, self.losses))


def _batches(batches: Iterable[Any]) -> Iterator[Any]:
    """Yields batches, iterating a re-iterable `batches` again when it ends
    (an iterator ends once); stops if one pass yields nothing."""
    while True:
        it = iter(batches)
        once = it is batches
        empty = True
        for b in it:
            empty = False
            yield b
        if once or empty:
            return


def _call_model(model: Callable[..., Any], loss_fn: Callable[..., Any],
                batch: Any) -> torch.Tensor:
    if not isinstance(batch, (tuple, list)) or len(batch) != 2:
        raise ValueError("batches: each batch must be a pair (inputs, "
                         "targets), got %s" % type(batch).__name__)
    x, y = batch
    loss = loss_fn(model(x), y)
    if not isinstance(loss, torch.Tensor) or loss.numel() != 1:
        raise ValueError("loss_fn: must return a scalar tensor, got %s" % (
            type(loss).__name__ if not isinstance(loss, torch.Tensor)
            else "a tensor of shape %s" % (tuple(loss.shape),)))
    return loss


def run(model: torch.nn.Module, optimizer: torch.optim.Optimizer,
        loss_fn: Callable[[Any, Any], torch.Tensor], batches: Iterable[Any],
        *, schedule: str, steps: int, client: Optional[Client] = None,
        target: Optional[str] = None, diverge_factor: float = 4.0,
        smoothing: float = 0.9, restore: bool = True, metric: str = "loss",
        window: int = 256, rpc_timeout: float = 5.0) -> RangeTestResult:
    """Runs the LR range test on the served sweep `schedule`.

    Args:
      model: the model; it is trained (model.train()) during the test.
      optimizer: its optimizer. Its groups' LRs are set from the schedule:
        group 0 gets the served LR itself, other groups keep their ratio
        to group 0.
      loss_fn: loss_fn(model(inputs), targets) -> scalar tensor.
      batches: (inputs, targets) pairs: a DataLoader, a list, an iterator.
      schedule: the sweep's schedule id or name.
      steps: N, the most steps to run (>= 1), normally the sweep's length.
      client: an anneal.Client (default Client(target)).
      target: HOST:PORT when no client is given (default $ANNEAL_SERVER).
      diverge_factor: stop once the smoothed loss exceeds this times its
        minimum so far (> 1).
      smoothing: the EMA factor of the smoothed loss, in [0, 1).
      restore: put the model's and the optimizer's state back afterwards.
      metric: the name the loss is reported under.
      window, rpc_timeout: passed to AnnealLR.

    Returns a RangeTestResult. The reports are flushed (up to 5 s) before
    it returns.
    """
    if not isinstance(model, torch.nn.Module):
        raise ValueError("model: must be a torch.nn.Module, got %s" %
                         type(model).__name__)
    if not isinstance(optimizer, torch.optim.Optimizer):
        raise ValueError("optimizer: must be a torch.optim.Optimizer, got %s"
                         % type(optimizer).__name__)
    if not callable(loss_fn):
        raise ValueError("loss_fn: must be callable, got %s" %
                         type(loss_fn).__name__)
    if not isinstance(schedule, str) or not schedule:
        raise ValueError("schedule: must be a schedule id or name, got %r" %
                         (schedule,))
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 1:
        raise ValueError("steps: must be an integer >= 1, got %r" % (steps,))
    if not (isinstance(diverge_factor, (int, float)) and
            math.isfinite(diverge_factor) and diverge_factor > 1):
        raise ValueError("diverge_factor: must be a finite number > 1, got %r"
                         % (diverge_factor,))
    if not (isinstance(smoothing, (int, float)) and 0 <= smoothing < 1):
        raise ValueError("smoothing: must be in [0, 1), got %r" %
                         (smoothing,))
    check_metrics(0, {metric: 0.0})
    try:
        iter(batches)
    except TypeError:
        raise ValueError("batches: must be iterable, got %s" %
                         type(batches).__name__) from None

    own_client = client is None
    client = client if client is not None else Client(target)
    name = schedule_name(schedule)
    result = RangeTestResult(schedule=name, steps=steps)
    saved = None
    if restore:
        saved = (copy.deepcopy(model.state_dict()),
                 copy.deepcopy(optimizer.state_dict()))
    scheduler: Optional[AnnealLR] = None
    try:
        info = client.get(name, timeout=rpc_timeout)
        first = info.timeline[0].spec if info.timeline else info.spec
        earlier = next(iter(client.list_reports(
            name, start_step=0, end_step=steps, metrics=[metric],
            page_size=1, timeout=rpc_timeout)), None)
        if earlier is not None:
            warnings.warn(
                "anneal: %s already has %r reports from step %d on; this "
                "run's reports merge with them (use a fresh sweep schedule "
                "per range test)" % (name, metric, earlier.step),
                stacklevel=2)
        # Group 0 on the served LR itself, the others in proportion.
        base0 = optimizer.param_groups[0]["lr"]
        for group in optimizer.param_groups:
            ratio = group["lr"] / base0 if base0 else 1.0
            group["lr"] = first.max_lr * ratio
            group.pop("initial_lr", None)
        scheduler = AnnealLR(optimizer, name, client=client, window=window,
                             watch=False, rpc_timeout=rpc_timeout)
        model.train()
        beta = float(smoothing)
        avg = 0.0
        source = _batches(batches)
        for t in range(steps):
            batch = next(source, None)
            if batch is None:
                result.stopped = STOP_EXHAUSTED
                break
            loss = _call_model(model, loss_fn, batch)
            value = float(loss.detach())
            lr = optimizer.param_groups[0]["lr"]
            result.lrs.append(lr)
            result.losses.append(value)
            scheduler.report({metric: value})
            if not math.isfinite(value):
                result.smoothed.append(value)
                result.stopped = STOP_NONFINITE
                break
            avg = beta * avg + (1 - beta) * value
            smooth = avg / (1 - beta ** (t + 1))
            result.smoothed.append(smooth)
            if smooth < result.best_loss:
                result.best_loss, result.best_step = smooth, t
            if smooth > diverge_factor * result.best_loss:
                result.stopped = STOP_DIVERGED
                break
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            if t + 1 < steps:
                scheduler.step()
    finally:
        if scheduler is not None:
            scheduler.close()  # flushes the reports (up to 5 s)
        if saved is not None:
            model.load_state_dict(saved[0])
            optimizer.load_state_dict(saved[1])
        if own_client:
            client.close()
    return result
