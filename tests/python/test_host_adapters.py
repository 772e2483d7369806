"""Contract tests of the host adapters with fake hosts that replay each
host's documented call order (none of these frameworks is packaged in
Debian 12); a real-host test runs where the framework is importable."""

from __future__ import annotations

import importlib.util

import pytest

torch = pytest.importorskip("torch")

import anneal.deepspeed  # noqa: E402
import anneal.lightning  # noqa: E402
from anneal.torch import AnnealLR  # noqa: E402

SPEC = {"max_lr": 0.1, "min_lr": 1e-3,
        "warm_restarts": {"period": 10, "period_mult": 2}}


class FakeDeepSpeedEngine:
    """DeepSpeedEngine's scheduler handling, as deepspeed/runtime/engine.py
    does it: _configure_lr_scheduler calls a callable client scheduler with
    the basic optimizer; _take_model_step steps it only when the step did
    not overflow, retrying with increment= on a TypeError."""

    def __init__(self, optimizer, lr_scheduler, train_batch_size=32):
        self.basic_optimizer = optimizer
        self.lr_scheduler = (lr_scheduler(optimizer) if callable(lr_scheduler)
                             and not hasattr(lr_scheduler, "step")
                             else lr_scheduler)
        self.skipped_steps = 0
        self.global_steps = 0
        self._batch = train_batch_size

    def step(self, overflow=False, lr_kwargs=None):
        if overflow:
            self.skipped_steps += 1
        else:
            self.basic_optimizer.step()
            try:
                self.lr_scheduler.step(**(lr_kwargs or {}))
            except TypeError:
                self.lr_scheduler.step(increment=self._batch)
        self.global_steps += 1


def test_deepspeed_factory_is_not_stepped_on_overflow(client):
    client.create("ds", SPEC)
    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(2))], lr=0.1)
    engine = FakeDeepSpeedEngine(
        opt, anneal.deepspeed.factory("ds", client=client, watch=False))
    assert isinstance(engine.lr_scheduler, AnnealLR)
    want = client.evaluate_range("ds", 0, 60, inspect_only=True)
    applied = 0
    for i in range(60):
        overflow = i % 7 == 3
        engine.step(overflow=overflow,
                    lr_kwargs={"increment": 32} if i % 5 == 0 else None)
        applied += not overflow
        # Step t of the schedule is the t-th update that ran.
        assert opt.param_groups[0]["lr"] == want.lr[applied], i
    assert engine.skipped_steps == 9 and engine.lr_scheduler.last_epoch == 51
    engine.lr_scheduler.close()


def test_lightning_config_steps_every_optimizer_step(client):
    client.create("pl-run", SPEC)
    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(2))], lr=0.1)
    sched = AnnealLR(opt, "pl-run", client=client, watch=False)
    config = anneal.lightning.scheduler_config(sched)
    # Lightning merges the dict into its defaults, whose interval is
    # "epoch": the helper must say "step".
    defaults = {"scheduler": None, "name": None, "interval": "epoch",
                "frequency": 1, "reduce_on_plateau": False, "monitor": None,
                "strict": True}
    merged = dict(defaults, **config)
    assert merged["interval"] == "step" and merged["frequency"] == 1
    assert merged["scheduler"] is sched and merged["name"] == "pl-run"
    assert anneal.lightning.scheduler_config(sched, "lr")["name"] == "lr"
    want = client.evaluate_range("pl-run", 0, 30, inspect_only=True)
    for batch in range(1, 30):  # the training loop with interval "step"
        opt.step()
        if batch % merged["frequency"] == 0:
            merged["scheduler"].step()
        assert opt.param_groups[0]["lr"] == want.lr[batch]
    sched.close()


@pytest.mark.skipif(importlib.util.find_spec("deepspeed") is None,
                    reason="DeepSpeed is not installed (not in Debian 12)")
def test_real_deepspeed_accepts_the_factory(client):  # pragma: no cover
    import deepspeed
    client.create("ds-real", SPEC)
    model = torch.nn.Linear(2, 1)
    engine, _, _, sched = deepspeed.initialize(
        model=model, optimizer=torch.optim.SGD(model.parameters(), lr=0.1),
        config={"train_batch_size": 1},
        lr_scheduler=anneal.deepspeed.factory("ds-real", client=client))
    assert isinstance(sched, AnnealLR)
