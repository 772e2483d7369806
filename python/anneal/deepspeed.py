"""DeepSpeed: an anneal schedule as the engine's LR scheduler.

    engine, opt, _, sched = deepspeed.initialize(
        model=model, optimizer=opt, config=ds_config,
        lr_scheduler=anneal.deepspeed.factory("run-7"))

DeepSpeed calls a callable `lr_scheduler` with its basic optimizer (the
torch optimizer inside the ZeRO or fp16 wrapper) and steps the result once
per optimizer step that ran: on an fp16 overflow step it skips the update
and does not step the scheduler (deepspeed/runtime/engine.py,
_configure_lr_scheduler and _take_model_step). So anneal's step t is the
t-th update that was applied. Leave "scheduler" out of ds_config: older
DeepSpeed versions prefer the config's scheduler to the client's.
"""

from __future__ import annotations

from typing import Any, Callable

from anneal.torch import AnnealLR


def factory(schedule: str, **kwargs: Any) -> Callable[[Any], AnnealLR]:
    """A callable for deepspeed.initialize(lr_scheduler=...): builds
    AnnealLR(optimizer, schedule, **kwargs) on DeepSpeed's basic optimizer
    (kwargs as AnnealLR's, e.g. create_if_missing=spec)."""
    def build(optimizer: Any) -> AnnealLR:
        return AnnealLR(optimizer, schedule, **kwargs)
    build.__name__ = "anneal_lr_%s" % schedule.replace("/", "_")
    return build
