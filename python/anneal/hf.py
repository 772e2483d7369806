"""Hugging Face Trainer: an anneal schedule as the Trainer's scheduler, and
a callback that reports the Trainer's logs and evaluations.

    opt, sched = anneal.hf.optimizers(model, "run-7", create_if_missing=SPEC)
    trainer = Trainer(model=model, args=args, train_dataset=train,
                      optimizers=(opt, sched),
                      callbacks=[anneal.hf.ReportCallback(sched)])

The Trainer uses a scheduler passed in `optimizers` as it is (it creates
one only when none is given) and steps it after each optimizer step that
ran (transformers/trainer.py, the training loop: `if optimizer_was_run:
self.lr_scheduler.step()`), before it increments state.global_step. So
after global step g the scheduler has stepped g times: anneal's step g.
"""

from __future__ import annotations

from typing import Any, Mapping, Optional, Tuple

import torch

from anneal.client import Client, schedule_name, to_spec
from anneal.errors import NotFoundError, UnavailableError
from anneal.torch import AnnealLR

try:  # the real base class where transformers is installed
    from transformers import TrainerCallback as _CallbackBase
except ImportError:  # pragma: no cover - exercised where it is missing
    class _CallbackBase:  # type: ignore[no-redef]
        """Every Trainer event as a no-op, as TrainerCallback has them."""

        def __getattr__(self, name: str) -> Any:
            if name.startswith("on_"):
                return lambda *args, **kwargs: None
            raise AttributeError(name)


def optimizers(model: torch.nn.Module, schedule: str, *,
               optimizer_cls: Any = torch.optim.AdamW,
               optimizer_kwargs: Optional[Mapping[str, Any]] = None,
               **scheduler_kwargs: Any) -> Tuple[torch.optim.Optimizer,
                                                  AnnealLR]:
    """(optimizer, AnnealLR) for Trainer(optimizers=...): the optimizer's lr
    is the schedule's max_lr (so the served LRs apply as they are), the
    scheduler is AnnealLR(optimizer, schedule, **scheduler_kwargs)."""
    client = scheduler_kwargs.get("client")
    if client is None:
        client = Client(scheduler_kwargs.pop("target", None))
        scheduler_kwargs["client"] = client
    spec = scheduler_kwargs.get("create_if_missing")
    try:
        max_lr = client.get(schedule_name(schedule)).timeline[0].spec.max_lr
    except (NotFoundError, UnavailableError):
        if spec is None:
            raise
        # AnnealLR creates it (or starts offline) from this spec.
        max_lr = to_spec(spec).max_lr
    opt = optimizer_cls(model.parameters(), lr=max_lr,
                        **dict(optimizer_kwargs or {}))
    return opt, AnnealLR(opt, schedule, **scheduler_kwargs)


class ReportCallback(_CallbackBase):
    """Reports what the Trainer logs (on_log: loss, grad_norm, ...) and its
    evaluations (on_evaluate: eval_loss, ...) to the schedule, at the
    Trainer's global step, from the main process only. Values that are not
    finite numbers are reported as they are; non-numbers are skipped."""

    SKIP = ("learning_rate", "epoch", "step")

    def __init__(self, scheduler: AnnealLR, *,
                 save_on_snapshot: bool = False) -> None:
        """With save_on_snapshot, the Trainer saves a checkpoint after each
        cycle's last update (the snapshot, at the cycle's LR minimum): for a
        snapshot ensemble or SWA over the snapshots."""
        self.scheduler = scheduler
        self.save_on_snapshot = save_on_snapshot
        self.snapshots_saved = 0
        self._snapshot_due = False
        if save_on_snapshot:
            previous = scheduler.on_snapshot

            def on_snapshot(result: Any) -> None:
                if previous is not None:
                    previous(result)
                self._snapshot_due = True
            scheduler.on_snapshot = on_snapshot

    def _report(self, state: Any, values: Optional[Mapping[str, Any]]) -> None:
        if not values or not getattr(state, "is_world_process_zero", True):
            return
        numbers = {k: float(v) for k, v in values.items()
                   if k not in self.SKIP and isinstance(v, (int, float))
                   and not isinstance(v, bool)}
        if numbers:
            self.scheduler.report(numbers, step=int(state.global_step))

    def on_log(self, args: Any, state: Any, control: Any,
               logs: Optional[Mapping[str, Any]] = None, **kwargs: Any) -> None:
        self._report(state, logs)

    def on_step_end(self, args: Any, state: Any, control: Any,
                    **kwargs: Any) -> None:
        # AnnealLR called on_snapshot in this step's scheduler.step(): the
        # model now holds the cycle's last update.
        if self._snapshot_due:
            self._snapshot_due = False
            control.should_save = True
            self.snapshots_saved += 1

    def on_evaluate(self, args: Any, state: Any, control: Any,
                    metrics: Optional[Mapping[str, Any]] = None,
                    **kwargs: Any) -> None:
        self._report(state, metrics)


__all__ = ["optimizers", "ReportCallback"]
