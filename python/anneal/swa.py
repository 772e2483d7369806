"""Snapshot helpers: what to do when the schedule says `snapshot`.

The scheduler calls `on_snapshot(result)` once the last update of a cycle
(the one at the cycle's minimum LR) has been applied. These are ready-made
callbacks for the two classic uses:

* SwaOnSnapshot keeps a running SWA average of the weights at the end of
  every cycle (torch.optim.swa_utils.AveragedModel; Izmailov et al. 2018
  average exactly at the LR minima of a cyclic schedule);
* SaveOnSnapshot writes the weights of each cycle's end to a file, for a
  snapshot ensemble (Huang et al. 2017).
"""

from __future__ import annotations

import os
from typing import Callable, List, Optional

import torch
from torch.optim.swa_utils import AveragedModel, update_bn

from anneal.results import StepResult


class SwaOnSnapshot:
    """A running SWA average of `model`, updated at every snapshot.

        swa = SwaOnSnapshot(model)
        scheduler = AnnealLR(optimizer, "job", on_snapshot=swa)
        ...
        swa.finish(train_loader)   # BatchNorm statistics, if any
        evaluate(swa.averaged)

    `start_cycle` skips the snapshots of early cycles (their weights are far
    from the final basin). `averaged` is the AveragedModel; `snapshots`
    lists the results that were averaged.
    """

    def __init__(self, model: torch.nn.Module, *, start_cycle: int = 0,
                 device: Optional[torch.device] = None,
                 use_buffers: bool = False) -> None:
        self.model = model
        self.start_cycle = start_cycle
        self.averaged = AveragedModel(model, device=device,
                                      use_buffers=use_buffers)
        self.snapshots: List[StepResult] = []

    def __call__(self, result: StepResult) -> None:
        if result.cycle < self.start_cycle:
            return
        self.averaged.update_parameters(self.model)
        self.snapshots.append(result)

    def finish(self, loader, device: Optional[torch.device] = None) -> None:
        """Recomputes BatchNorm statistics for the averaged weights."""
        update_bn(loader, self.averaged, device=device)


class SaveOnSnapshot:
    """Saves `model.state_dict()` at every snapshot, to
    pattern.format(step=..., cycle=...) (default "snapshot-{cycle:03d}.pt").
    `paths` lists the files written."""

    def __init__(self, model: torch.nn.Module, directory: str = ".",
                 pattern: str = "snapshot-{cycle:03d}.pt",
                 save: Callable[[object, str], None] = torch.save) -> None:
        self.model = model
        self.directory = directory
        self.pattern = pattern
        self._save = save
        self.paths: List[str] = []

    def __call__(self, result: StepResult) -> None:
        path = os.path.join(self.directory, self.pattern.format(
            step=result.step, cycle=result.cycle))
        self._save(self.model.state_dict(), path)
        self.paths.append(path)
