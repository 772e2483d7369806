"""PyTorch Lightning: an anneal schedule in configure_optimizers.

    def configure_optimizers(self):
        opt = torch.optim.SGD(self.parameters(), lr=0.1, momentum=0.9)
        sched = AnnealLR(opt, "run-7", create_if_missing=SPEC)
        return {"optimizer": opt,
                "lr_scheduler": anneal.lightning.scheduler_config(sched)}

Lightning steps a scheduler once per epoch unless its config says
"interval": "step": the default config it merges a returned dict into has
"interval": "epoch" (_get_default_scheduler_config, in
pytorch_lightning/trainer/optimizers.py in 1.x and
lightning/pytorch/core/optimizer.py in 2.x). With "step" it steps the
scheduler after each optimizer step of the training loop.
With several processes each runs its own AnnealLR; reports go from global
rank 0 (AnnealLR's report_from). AnnealCallback reports the training loss
and validation metrics at the right steps and logs cycle and revision:

        trainer = Trainer(callbacks=[anneal.lightning.AnnealCallback(sched)])

(build the scheduler first, e.g. in the module's __init__, so both see it).
"""

from __future__ import annotations

from typing import Any, Dict, Optional

from anneal.torch import AnnealLR


def scheduler_config(scheduler: AnnealLR,
                     name: Optional[str] = None) -> Dict[str, Any]:
    """The lr_scheduler config Lightning needs for a per-step schedule:
    interval "step", frequency 1, and the schedule's id as the name its
    LearningRateMonitor logs under."""
    return {"scheduler": scheduler, "interval": "step", "frequency": 1,
            "name": name or scheduler.schedule.split("/", 1)[-1]}


try:  # the real base class where Lightning is installed
    from lightning.pytorch.callbacks import Callback as _CallbackBase
except ImportError:  # pragma: no cover - depends on what is installed
    try:
        from pytorch_lightning.callbacks import Callback as _CallbackBase
    except ImportError:
        class _CallbackBase:  # type: ignore[no-redef]
            """Every Lightning hook as a no-op, as Callback has them."""

            def __getattr__(self, name: str) -> Any:
                if name.startswith("on_"):
                    return lambda *args, **kwargs: None
                raise AttributeError(name)


def _number(value: Any) -> Optional[float]:
    """A float from a number or a one-element tensor, else None."""
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        return float(value)
    item = getattr(value, "item", None)
    if callable(item) and getattr(value, "numel", lambda: 0)() == 1:
        return float(item())
    return None


class AnnealCallback(_CallbackBase):
    """Reports the training loss and the validation metrics from the global
    zero process, logs the schedule's cycle and revision, and keeps the
    schedule's name in the checkpoint so that a resume with another
    schedule is refused.

    Lightning steps a per-step scheduler right after the optimizer step and
    before on_train_batch_end (lightning/pytorch/loops/
    training_epoch_loop.py, advance: update_lr_schedulers("step") then the
    on_train_batch_end hooks). So in on_train_batch_end the scheduler is at
    step t and the batch's loss is that of the model after t - 1 updates:
    it is reported at t - 1, as AnnealLR.report labels losses. Validation
    runs on the model after t updates and is reported at t.
    """

    def __init__(self, scheduler: AnnealLR, *, log: bool = True) -> None:
        self.scheduler = scheduler
        self.log = log

    def on_train_batch_end(self, trainer: Any, pl_module: Any, outputs: Any,
                           batch: Any, batch_idx: int) -> None:
        loss = outputs.get("loss") if isinstance(outputs, dict) else outputs
        value = _number(loss) if loss is not None else None
        step = self.scheduler.last_epoch - 1
        if value is not None and step >= 0 and trainer.is_global_zero:
            self.scheduler.report(loss=value, step=step)
        if self.log:
            r = self.scheduler.last_result
            pl_module.log("anneal/cycle", float(r.cycle))
            if self.scheduler.revision is not None:
                pl_module.log("anneal/revision", float(self.scheduler.revision))

    def on_validation_epoch_end(self, trainer: Any, pl_module: Any) -> None:
        if not trainer.is_global_zero:
            return
        metrics = {}
        for name, value in dict(trainer.callback_metrics).items():
            number = _number(value)
            if name.startswith("val") and number is not None:
                metrics[name] = number
        if metrics:
            self.scheduler.report(metrics, step=self.scheduler.last_epoch)

    def state_dict(self) -> Dict[str, Any]:
        return {"schedule": self.scheduler.schedule,
                "revision": self.scheduler.revision}

    def load_state_dict(self, state_dict: Dict[str, Any]) -> None:
        saved = state_dict.get("schedule")
        if saved not in (None, self.scheduler.schedule):
            try:
                self.scheduler.check_forked_from(saved)
            except ValueError:
                raise ValueError(
                    "this checkpoint was trained on %s, not %s: resume with "
                    "the same schedule (or fork it: Client.fork)" %
                    (saved, self.scheduler.schedule)) from None
