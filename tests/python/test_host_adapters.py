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


class FakeTrainerState:
    def __init__(self):
        self.global_step = 0
        self.is_world_process_zero = True


def test_hf_trainer_steps_and_reports_at_the_global_step(client):
    """The Trainer's loop (transformers/trainer.py): optimizer step, then
    the scheduler's step if the optimizer ran, then global_step += 1, then
    on_log every logging_steps and on_evaluate every eval_steps."""
    import anneal.hf
    client.create("hf-run", SPEC)
    model = torch.nn.Linear(2, 1)
    opt, sched = anneal.hf.optimizers(model, "hf-run", client=client,
                                      watch=False)
    assert isinstance(opt, torch.optim.AdamW)
    assert opt.param_groups[0]["lr"] == 0.1  # the schedule's max_lr
    callback = anneal.hf.ReportCallback(sched)
    state = FakeTrainerState()
    want = client.evaluate_range("hf-run", 0, 41, inspect_only=True)
    for i in range(40):
        opt.step()
        sched.step()
        state.global_step += 1
        if state.global_step % 5 == 0:
            logs = {"loss": 1.0 / state.global_step, "grad_norm": 2.0,
                    "learning_rate": sched.get_last_lr()[0], "epoch": 0.1}
            assert logs["learning_rate"] == want.lr[state.global_step]
            callback.on_log(None, state, None, logs=logs)
        if state.global_step % 20 == 0:
            callback.on_evaluate(None, state, None,
                                 metrics={"eval_loss": 0.5, "eval_runtime": 1,
                                          "eval_label": "x"})
    # A worker process reports nothing.
    state.is_world_process_zero = False
    callback.on_log(None, state, None, logs={"loss": 9.0})
    sched.close()
    reports = {r.step: r.metrics for r in client.list_reports("hf-run")}
    assert sorted(reports) == list(range(5, 41, 5))
    assert reports[5] == {"loss": 0.2, "grad_norm": 2.0}
    assert reports[20] == {"loss": 0.05, "grad_norm": 2.0, "eval_loss": 0.5,
                           "eval_runtime": 1.0}
    # Events the callback does not handle are no-ops, as TrainerCallback's.
    assert callback.on_train_begin(None, state, None) is None


class FakeAcceleratedScheduler:
    """accelerate/scheduler.py AcceleratedScheduler.step: with
    step_with_optimizer (the default) and split_batches False, it steps the
    wrapped scheduler num_processes times per optimizer step."""

    def __init__(self, scheduler, num_processes, step_with_optimizer=True,
                 split_batches=False):
        self.scheduler = scheduler
        self.num_processes = num_processes
        self.step_with_optimizer = step_with_optimizer
        self.split_batches = split_batches

    def step(self):
        if not self.step_with_optimizer or self.split_batches:
            self.scheduler.step()
            return
        for _ in range(self.num_processes):
            self.scheduler.step()


def test_accelerate_prepare_would_step_once_per_process(client):
    """Why docs/integrations.md says not to prepare() AnnealLR: the wrapper
    steps it num_processes times per update, which moves anneal's step
    count (the schedule's time) that many times too fast."""
    client.create("acc", SPEC)
    for wrap, per_update in ((dict(), 4), (dict(step_with_optimizer=False), 1)):
        opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(2))], lr=0.1)
        sched = AnnealLR(opt, "acc", client=client, watch=False)
        wrapped = FakeAcceleratedScheduler(sched, num_processes=4, **wrap)
        for _ in range(10):
            opt.step()
            wrapped.step()
        assert sched.last_epoch == 10 * per_update
        sched.close()


class FakeLightningTrainer:
    """The order of lightning/pytorch/loops/training_epoch_loop.py
    (advance): training_step and the optimizer step, then
    update_lr_schedulers("step"), then on_train_batch_end; validation at
    the end of each `val_every` batches, then on_validation_epoch_end."""

    def __init__(self, callback, config, optimizer, val_every=10):
        self.callback = callback
        self.config = config
        self.optimizer = optimizer
        self.val_every = val_every
        self.is_global_zero = True
        self.callback_metrics = {}
        self.logged = []

    def log(self, name, value):  # as LightningModule.log
        self.logged.append((name, value))

    def fit(self, batches):
        for batch_idx in range(batches):
            loss = torch.tensor(1.0 / (batch_idx + 1))
            self.optimizer.step()
            if self.config["interval"] == "step":
                self.config["scheduler"].step()
            self.callback.on_train_batch_end(self, self, {"loss": loss},
                                             None, batch_idx)
            if (batch_idx + 1) % self.val_every == 0:
                self.callback_metrics = {"val_loss": torch.tensor(0.5),
                                         "train_acc": torch.tensor(0.9)}
                self.callback.on_validation_epoch_end(self, self)


def test_lightning_callback_reports_at_the_right_steps(client):
    client.create("pl-cb", SPEC)
    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(2))], lr=0.1)
    sched = AnnealLR(opt, "pl-cb", client=client, watch=False)
    callback = anneal.lightning.AnnealCallback(sched)
    trainer = FakeLightningTrainer(callback,
                                   anneal.lightning.scheduler_config(sched), opt)
    trainer.fit(30)
    sched.reporter.flush()
    reports = {r.step: r.metrics for r in client.list_reports("pl-cb")}
    # Batch i's loss is the model after i updates: reported at step i;
    # the last validation (after 30 updates) at 30.
    assert sorted(reports) == list(range(31))
    assert reports[30] == {"val_loss": 0.5}
    assert reports[0]["loss"] == pytest.approx(1.0)
    assert reports[9]["loss"] == pytest.approx(0.1)
    # Validation after 10 updates is reported at step 10, val_* only.
    assert reports[10] == {"loss": pytest.approx(1 / 11), "val_loss": 0.5}
    assert ("anneal/cycle", 1.0) in trainer.logged  # SGDR's 2nd cycle at 10
    assert ("anneal/revision", 1.0) in trainer.logged
    # The checkpoint keeps the schedule; another schedule's is refused.
    state = callback.state_dict()
    assert state["schedule"] == "schedules/pl-cb"
    callback.load_state_dict(state)
    with pytest.raises(ValueError, match="schedules/other"):
        callback.load_state_dict({"schedule": "schedules/other"})
    # Other processes report nothing.
    trainer.is_global_zero = False
    callback.on_validation_epoch_end(trainer, trainer)
    sched.close()


class FakeControl:
    should_save = False


def test_hf_saves_on_snapshot_steps(client):
    """SGDR period 10, mult 2: cycles end at steps 9 and 29; the snapshot
    model exists after updates 10 and 30, so the Trainer saves there."""
    import anneal.hf
    client.create("hf-snap", SPEC)
    model = torch.nn.Linear(2, 1)
    seen = []
    opt, sched = anneal.hf.optimizers(model, "hf-snap", client=client,
                                      watch=False, on_snapshot=seen.append)
    callback = anneal.hf.ReportCallback(sched, save_on_snapshot=True)
    state = FakeTrainerState()
    saved_at = []
    for _ in range(35):
        opt.step()
        sched.step()
        state.global_step += 1
        control = FakeControl()
        callback.on_step_end(None, state, control)
        if control.should_save:
            saved_at.append(state.global_step)
    assert saved_at == [10, 30]
    assert [r.step for r in seen] == [9, 29]  # the user's callback still runs
    assert callback.snapshots_saved == 2
    sched.close()


class FakeTracer:
    """What a step looks like inside jax.jit: a tracer, no value."""

    def __int__(self):
        raise RuntimeError("ConcretizationTypeError")


class DynamicJaxprTracer(FakeTracer):
    pass


def test_optax_host_schedule_serves_the_window_on_the_host(client):
    """The loop of optax.inject_hyperparams: the host sets the state's
    learning_rate from lr(step) before each jitted update."""
    import anneal.optax
    client.create("jax-run", SPEC)
    want = client.evaluate_range("jax-run", 0, 700, inspect_only=True)
    with anneal.optax.HostSchedule("jax-run", client=client, window=64) as lr:
        hyperparams = {"learning_rate": lr(0)}
        for step in range(700):
            hyperparams["learning_rate"] = lr(step)
            assert hyperparams["learning_rate"] == want.lr[step]
        assert lr.revision == 1
        assert lr._prefetcher.fetches >= 700 // 64
        with pytest.raises(TypeError, match="inject_hyperparams"):
            lr(DynamicJaxprTracer())
    # Prefetching is serving: later changes start after the window.
    assert client.get("jax-run").max_step_served >= 699


def test_optax_compiled_schedule_is_the_engine_table_in_float32(client):
    """compiled_schedule: a pure lr(count) over a float32 table of the
    engine's LRs, from a spec offline or from a stored schedule (whose steps
    then count as served). numpy stands in for jax.numpy (not in Debian)."""
    import numpy as np
    import anneal.optax
    spec = {"max_lr": 0.1, "min_lr": 1e-4, "warmup": {"steps": 10},
            "warm_restarts": {"period": 50, "period_mult": 2}}
    lr = anneal.optax.compiled_schedule(400, spec=spec, xp=np)
    want = client.simulate(spec, 0, 400)
    assert lr.table.dtype == np.float32
    for t in (0, 5, 10, 59, 60, 160, 399):
        assert lr(t) == np.float32(want.lr[t])
        assert abs(float(lr(t)) - want.lr[t]) <= 2**-24 * want.lr[t]
    # Vectorized counts (what vmap sees), and past the end: the last value.
    counts = np.array([0, 10, 399, 400, 10**6, -3])
    assert list(lr(counts)) == [np.float32(want.lr[i])
                                for i in (0, 10, 399, 399, 399, 0)]
    client.create("jax-offline", spec)
    stored = anneal.optax.compiled_schedule(300, schedule="jax-offline",
                                            client=client, xp=np)
    assert list(stored.table) == list(lr.table[:300])
    assert client.get("jax-offline").max_step_served >= 299
    with pytest.raises(ValueError, match="exactly one of spec= and schedule="):
        anneal.optax.compiled_schedule(10, xp=np)
    with pytest.raises(ValueError, match="int32"):
        anneal.optax.compiled_schedule(2**31, spec=spec, xp=np)
