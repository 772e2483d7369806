"""Population-based training with Ray Tune: one anneal schedule per trial
generation, forked from the donor's on every exploit.

PBT (ray-project/ray python/ray/tune/schedulers/pbt.py, `_exploit`) clones a
better trial into a worse one: it builds the new config with `_explore`
(lr x0.8 or x1.2, resampling), sets it on the trial, makes the donor's last
checkpoint the trial's, and restarts the trial from it. A function trainable
then runs again from the top with the new `config` and
`tune.get_checkpoint()` holding the donor's checkpoint; a class trainable
with reuse_actors gets `reset_config(new_config)` and `load_checkpoint`.

Either way the trainable calls `schedule_for_trial` first::

    def train_fn(config):
        client = anneal.Client(ANNEAL_SERVER)
        state = load_state(tune.get_checkpoint())   # None on a first start
        trial = anneal.ray.schedule_for_trial(
            client, tune.get_context().get_trial_id(), SPEC,
            overrides={"max_lr": config["lr"]},
            checkpoint_state=state and state["sched"],
            experiment="cifar-pbt")
        opt = torch.optim.SGD(model.parameters(), lr=trial.base_lr)
        sched = AnnealLR(opt, trial.name, client=client)
        if state:
            ...                                      # model, optimizer
            sched.load_state_dict(state["sched"])  # accepted: forked

and the LR PBT chose is the schedule's, from the step after the
checkpoint, recorded as an UPDATE by actor "pbt" with the donor and the
change in its reason. A checkpoint restore can no longer put back the old
LR (ray-project/ray#62173): the optimizer's lr comes from the schedule at
every step.

Names: a trial's schedules are `<experiment>-<trial>-<generation>` (made
valid schedule ids), labelled experiment, trial and generation, so
`client.list('labels.experiment = "cifar-pbt"')` and each schedule's
`forked_from` give the whole population's lineage tree. Ray itself is not
imported: the helper needs only the trial id and the checkpointed state.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any, Dict, Mapping, Optional

from anneal.client import Client, SpecLike, schedule_name, spec_to_json, to_spec
from anneal.errors import AlreadyExistsError
from anneal.results import Schedule

PBT_ACTOR = "pbt"

_ID_TAIL = re.compile(r"[^a-z0-9-]+")


@dataclass(frozen=True)
class TrialSchedule:
    """The schedule a trial generation runs on: `name` for AnnealLR,
    `generation` (0 for the trial's first), and `forked_from` (the donor's
    schedule name and the fork step) when PBT exploited into it. Build the
    optimizer with lr=base_lr: the max_lr of the schedule's first segment,
    which AnnealLR takes as the unscaled group LR."""

    name: str
    generation: int
    base_lr: float
    forked_from: Optional[str] = None
    at_step: Optional[int] = None


def trial_schedule_id(experiment: str, trial_id: str, generation: int) -> str:
    """The schedule id of a trial's generation: lower-case, [a-z0-9-],
    starting with a letter, at most 63 characters (the trial id keeps its
    end, which is the part that tells trials apart)."""
    stem = _ID_TAIL.sub("-", ("%s-%s" % (experiment, trial_id)
                              if experiment else trial_id).lower()).strip("-")
    tail = "-%d" % generation
    stem = stem[-(63 - len(tail) - 1):].strip("-") or "trial"
    if not stem[0].isalpha():
        stem = "t" + stem
    return (stem + tail)[:63]


def with_overrides(spec: SpecLike,
                   overrides: Optional[Mapping[str, Any]]) -> Any:
    """`spec` with each override set: keys are field paths in the spec's
    JSON form ("max_lr", "warm_restarts.period"), values the new values."""
    out: Dict[str, Any] = json.loads(spec_to_json(to_spec(spec)))
    for path, value in (overrides or {}).items():
        node = out
        *parents, last = path.split(".")
        for key in parents:
            node = node.setdefault(key, {})
            if not isinstance(node, dict):
                raise ValueError("overrides[%r]: %s is not a message" %
                                 (path, key))
        node[last] = value
    return to_spec(out)


def _in_force(schedule: Schedule, step: int) -> Any:
    """The spec of the segment that serves `step`."""
    spec = schedule.timeline[0].spec
    for segment in schedule.timeline:
        if segment.from_step <= step:
            spec = segment.spec
    return spec


def _changes(old: Any, new: Any) -> str:
    """What an override changed, for the UPDATE's reason: "max_lr 0.1 ->
    0.08"."""
    a, b = (json.loads(spec_to_json(s)) for s in (old, new))
    out = []

    def walk(x: Any, y: Any, prefix: str) -> None:
        for key in sorted(set(x) | set(y)):
            u, v = x.get(key), y.get(key)
            if isinstance(u, dict) and isinstance(v, dict):
                walk(u, v, prefix + key + ".")
            elif u != v:
                out.append("%s%s %s -> %s" % (prefix, key, u, v))
    walk(a, b, "")
    return ", ".join(out)


def schedule_for_trial(client: Client, trial_id: str, base_spec: SpecLike, *,
                       overrides: Optional[Mapping[str, Any]] = None,
                       checkpoint_state: Optional[Mapping[str, Any]] = None,
                       experiment: str = "",
                       labels: Optional[Mapping[str, str]] = None,
                       actor: str = PBT_ACTOR) -> TrialSchedule:
    """The schedule this run of trial `trial_id` trains on, made if needed.

    - No `checkpoint_state` (a first start): generation 0, created from
      `base_spec` with `overrides` (the trial's sampled config); a trial
      started again finds it.
    - `checkpoint_state` (an AnnealLR.state_dict) of the trial's latest
      generation (it resumes its own checkpoint): that generation.
    - Any other schedule's state (PBT's exploit: the donor's checkpoint, at
      step s = its last_epoch): a new generation forked from the donor at
      s + 1. When `overrides` change the donor's spec in force there (the
      explore), the new spec runs from s + 1 as an UPDATE on the donor's
      clock by `actor`, its reason naming the donor and the change. The
      same exploit retried (the trainable restarted before its first
      checkpoint) finds the generation it made.
    """
    exp_label = experiment or "-"
    base_labels = dict(labels or {})
    base_labels.update({"experiment": exp_label, "trial": trial_id})
    mine = sorted(
        (s for s in client.list('labels.experiment = "%s" AND '
                                'labels.trial = "%s"' % (exp_label, trial_id))
         if s.labels.get("generation", "").isdigit()),
        key=lambda s: int(s.labels["generation"]))
    latest = mine[-1] if mine else None

    def generation_labels(n: int) -> Dict[str, str]:
        return dict(base_labels, generation=str(n))

    if checkpoint_state is None:
        if latest is not None:
            return _describe(latest)
        name = trial_schedule_id(experiment, trial_id, 0)
        spec = with_overrides(base_spec, overrides)
        try:
            client.create(name, spec,
                          labels=generation_labels(0), actor=actor,
                          reason="trial %s of %s" % (trial_id, exp_label))
        except AlreadyExistsError:
            pass  # another start of this trial made it
        return TrialSchedule(name=schedule_name(name), generation=0,
                             base_lr=spec.max_lr)

    saved = schedule_name(str(checkpoint_state["schedule"]))
    at_step = int(checkpoint_state["last_epoch"]) + 1
    if latest is not None and latest.name == saved:
        return _describe(latest)
    if (latest is not None and latest.forked_from is not None and
            latest.forked_from.source == saved and
            latest.forked_from.at_step == at_step):
        return _describe(latest)  # this exploit, retried
    donor = client.get(saved)
    old = _in_force(donor, at_step)
    new = with_overrides(old, overrides)
    changed = _changes(old, new)
    generation = int(latest.labels["generation"]) + 1 if latest else 0
    name = trial_schedule_id(experiment, trial_id, generation)
    reason = "exploit of %s at step %d%s" % (
        saved, at_step, "; " + changed if changed else "")
    try:
        client.fork(saved, name, at_step,
                    spec=new if changed else None,
                    labels=generation_labels(generation), actor=actor,
                    reason=reason)
    except AlreadyExistsError:
        pass  # made by a start of this trial that stopped before listing
    return TrialSchedule(name=schedule_name(name), generation=generation,
                         base_lr=donor.timeline[0].spec.max_lr,
                         forked_from=saved, at_step=at_step)


def _describe(s: Schedule) -> TrialSchedule:
    origin = s.forked_from
    return TrialSchedule(
        name=s.name, generation=int(s.labels.get("generation", "0")),
        base_lr=s.timeline[0].spec.max_lr,
        forked_from=origin.source if origin is not None else None,
        at_step=origin.at_step if origin is not None else None)
