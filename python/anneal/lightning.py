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
rank 0 (AnnealLR's report_from).
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
