"""anneal.ray against a fake Ray Tune PBT controller that replays
ray-project/ray python/ray/tune/schedulers/pbt.py's exploit (explore the
donor's config by x0.8, hand the trial the donor's last checkpoint, run the
trial's function trainable again from the top with both), with a real
optimizer and the real server: the exploited trial's LRs are the donor's
below the fork step and then a twin's given the same UPDATE; the mutation is
recorded by actor "pbt"; an exploit retried and a trial resuming its own
checkpoint find their schedule; and a real Tune run where Ray is installed.
"""

from __future__ import annotations

import importlib.util

import pytest

torch = pytest.importorskip("torch")

import anneal  # noqa: E402
import anneal.ray  # noqa: E402
from anneal.torch import AnnealLR  # noqa: E402
from lineage_helpers import lrs, tiny_model, train  # noqa: E402

SPEC = {"max_lr": 0.1, "min_lr": 1e-4,
        "warm_restarts": {"period": 10, "period_mult": 2}}
INTERVAL = 15  # PBT's perturbation_interval, in optimizer steps



def train_fn(client, trial_id, config, checkpoint, steps, seen):
    """A function trainable as pbt_guide.ipynb writes one: the config (with
    PBT's mutated lr) and tune.get_checkpoint() come in; it trains, and
    returns the checkpoint it would tune.report()."""
    trial = anneal.ray.schedule_for_trial(
        client, trial_id, SPEC, overrides={"max_lr": config["lr"]},
        checkpoint_state=checkpoint and checkpoint["sched"],
        experiment="cifar-pbt")
    model = tiny_model()
    opt = torch.optim.SGD(model.parameters(), lr=trial.base_lr, momentum=0.9)
    sched = AnnealLR(opt, trial.name, client=client, window=8)
    if checkpoint:
        model.load_state_dict(checkpoint["model"])
        opt.load_state_dict(checkpoint["opt"])  # carries the donor's lr...
        sched.load_state_dict(checkpoint["sched"])  # ...which this replaces
        seen.append(opt.param_groups[0]["lr"])
    train(model, opt, sched, steps, seen)
    state = {"model": model.state_dict(), "opt": opt.state_dict(),
             "sched": sched.state_dict()}
    sched.close()
    return trial, state


def _explore(config):
    """pbt.py _explore for a continuous key: x0.8 (or x1.2)."""
    return dict(config, lr=config["lr"] * 0.8)



def test_pbt_exploit_forks_the_donor_and_records_the_mutation(client):
    configs = {"a_00000": {"lr": 0.1}, "b_00001": {"lr": 0.05}}
    first, ckpt = {}, {}
    for tid, config in configs.items():
        first[tid], ckpt[tid] = train_fn(client, tid, config, None, INTERVAL,
                                         [])
    a = first["a_00000"]
    assert a.name == "schedules/cifar-pbt-a-00000-0"
    assert a.generation == 0 and a.forked_from is None
    assert first["b_00001"].base_lr == 0.05
    assert client.get(a.name).spec.max_lr == 0.1
    assert client.get(first["b_00001"].name).spec.max_lr == 0.05

    # b is in the lower quantile: exploit a. pbt.py sets the explored
    # config, makes a's checkpoint b's, and restarts b from it.
    new_config = _explore(configs["a_00000"])
    seen = []
    b1, b1_ckpt = train_fn(client, "b_00001", new_config, ckpt["a_00000"],
                           INTERVAL, seen)
    assert b1.name == "schedules/cifar-pbt-b-00001-1"
    assert (b1.generation, b1.forked_from, b1.at_step) == (
        1, a.name, INTERVAL + 1)
    assert b1.base_lr == 0.1  # the donor's first max_lr: LRs unscaled
    fork = client.get(b1.name)
    assert fork.labels["generation"] == "1"
    last = fork.timeline[-1]
    assert (last.kind, last.from_step, last.actor) == (
        "UPDATE", INTERVAL + 1, "pbt")
    assert last.reason == ("exploit of %s at step %d; max_lr 0.1 -> %s" %
                           (a.name, INTERVAL + 1, new_config["lr"]))

    # The oracle: a's spec, then the explored max_lr from the fork step.
    client.create("twin", SPEC)
    client.update("twin", spec=dict(SPEC, max_lr=new_config["lr"]),
                  effective_step=INTERVAL + 1)
    want = lrs(client, "twin", 3 * INTERVAL)
    got = lrs(client, b1.name, 3 * INTERVAL)
    assert got == want
    assert got[:INTERVAL + 1] == lrs(client, a.name, INTERVAL + 1)
    # The resumed optimizer applied exactly those, not the checkpoint's lr.
    assert seen == want[INTERVAL:2 * INTERVAL + 1]

    # The same exploit again (the trainable died before its checkpoint)
    # finds generation 1; b resuming its own checkpoint does too.
    again, _ = train_fn(client, "b_00001", new_config, ckpt["a_00000"], 1,
                        [])
    assert again.name == b1.name
    own, _ = train_fn(client, "b_00001", new_config, b1_ckpt, 1, [])
    assert own.name == b1.name
    # A first start again finds the trial's latest generation.
    restarted = anneal.ray.schedule_for_trial(client, "b_00001", SPEC,
                                              experiment="cifar-pbt")
    assert restarted.name == b1.name

    # The population's lineage tree, from the labels and forked_from.
    tree = {s.name: (s.forked_from.source if s.forked_from else None)
            for s in client.list('labels.experiment = "cifar-pbt"')}
    assert tree == {a.name: None, first["b_00001"].name: None,
                    b1.name: a.name}


def test_an_exploit_without_a_mutation_is_a_plain_fork(client):
    _, ckpt = train_fn(client, "donor", {"lr": 0.1}, None, 5, [])
    trial = anneal.ray.schedule_for_trial(
        client, "other", SPEC, overrides={"max_lr": 0.1},
        checkpoint_state=ckpt["sched"])
    fork = client.get(trial.name)
    assert [s.kind for s in fork.timeline] == ["CREATE"]
    assert fork.forked_from.at_step == 6


def test_trial_schedule_ids_are_valid_ids():
    make = anneal.ray.trial_schedule_id
    assert make("cifar-pbt", "a1b2c_00001", 3) == "cifar-pbt-a1b2c-00001-3"
    assert make("", "00001", 0) == "t00001-0"
    long = make("x" * 80, "trial_12345", 12)
    assert len(long) <= 63 and long.endswith("trial-12345-12")
    assert long[0].isalpha()
    with pytest.raises(ValueError, match="overrides"):
        anneal.ray.with_overrides({"max_lr": 0.1, "constant": {}},
                                  {"max_lr.x": 1})


@pytest.mark.skipif(importlib.util.find_spec("ray") is None,
                    reason="Ray is not installed (not packaged in Debian 12)")
def test_real_tune_pbt_run(server, client, tmp_path):  # pragma: no cover
    import os
    import pickle

    from ray import train, tune
    from ray.train import Checkpoint
    from ray.tune.schedulers import PopulationBasedTraining

    address = server.address

    def trainable(config):
        with anneal.Client(address) as c:
            ckpt = train.get_checkpoint()
            state = None
            if ckpt is not None:
                with ckpt.as_directory() as d:
                    with open(os.path.join(d, "state.pkl"), "rb") as f:
                        state = pickle.load(f)
            for _ in range(3):
                _, state = train_fn(c, train.get_context().get_trial_id(),
                                    config, state, INTERVAL, [])
                d = tmp_path / ("ckpt-%s-%d" % (
                    train.get_context().get_trial_id(),
                    state["sched"]["last_epoch"]))
                d.mkdir()
                with open(d / "state.pkl", "wb") as f:
                    pickle.dump(state, f)
                train.report({"score": -state["sched"]["last_epoch"] *
                              config["lr"]},
                             checkpoint=Checkpoint.from_directory(str(d)))

    pbt = PopulationBasedTraining(
        time_attr="training_iteration", metric="score", mode="max",
        perturbation_interval=1, hyperparam_mutations={"lr": [0.1, 0.05]})
    tune.Tuner(trainable, param_space={"lr": tune.grid_search([0.1, 0.05])},
               tune_config=tune.TuneConfig(scheduler=pbt)).fit()
    forks = [s for s in client.list('labels.experiment = "cifar-pbt"')
             if s.forked_from is not None]
    for s in forks:
        mutated = s.timeline[-1].from_step == s.forked_from.at_step
        assert not mutated or s.timeline[-1].actor == "pbt"
        donor = lrs(client, s.forked_from.source, s.forked_from.at_step)
        assert lrs(client, s.name, s.forked_from.at_step) == donor
