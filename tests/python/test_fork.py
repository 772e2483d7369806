"""ForkSchedule from outside: Client.fork against an oracle (a twin of the
source given the same UPDATE at the fork step), population-based training's
exploit with AnnealLR resuming the donor's checkpoint on the fork, annealctl
fork's output and exit codes, and a fork surviving kill -9."""

from __future__ import annotations

import time

import pytest

anneal = pytest.importorskip("anneal")
torch = pytest.importorskip("torch")

from anneal.torch import AnnealLR  # noqa: E402
from lineage_helpers import annealctl, lrs, tiny_model, train  # noqa: E402

DONOR = {"max_lr": 0.1, "min_lr": 1e-4,
         "warm_restarts": {"period": 10, "period_mult": 2}}
EXPLORE = {"max_lr": 0.08, "min_lr": 1e-4,
           "warm_restarts": {"period": 10, "period_mult": 2}}



def _twin(client, name, fork_step, spec):
    """The oracle: the donor's spec, then `spec` from `fork_step` as an
    update, on a schedule nobody has read."""
    client.create(name, DONOR)
    if spec is not None:
        client.update(name, spec=spec, effective_step=fork_step)


def test_fork_serves_the_donors_past_then_its_own_spec(client):
    client.create("donor", DONOR, labels={"team": "vision"})
    donor_lrs = lrs(client, "donor", 60)
    fork = client.fork("donor", "trial", 25, spec=EXPLORE, actor="pbt",
                       reason="exploit of donor")
    assert fork.name == "schedules/trial"
    assert fork.labels == {"team": "vision"}
    assert fork.forked_from.source == "schedules/donor"
    assert fork.forked_from.at_step == 25
    assert fork.max_step_served == 24
    assert [s.kind for s in fork.timeline] == ["CREATE", "UPDATE"]
    assert fork.timeline[1].from_step == 25
    assert fork.timeline[1].actor == "pbt"

    _twin(client, "twin", 25, EXPLORE)
    trial = lrs(client, "trial", 200)
    assert trial[:25] == donor_lrs[:25]  # bit for bit
    assert trial == lrs(client, "twin", 200)
    assert trial[30] != donor_lrs[30]
    # The donor is only read.
    assert client.get("donor").revision == 1

    with pytest.raises(anneal.NotFoundError, match="source"):
        client.fork("nobody", "t2", 3)
    with pytest.raises(anneal.AlreadyExistsError):
        client.fork("donor", "trial", 3)
    with pytest.raises(anneal.InvalidArgumentError, match="at_step"):
        client.fork("donor", "t3", -5)
    with pytest.raises(anneal.FailedPreconditionError):
        client.update("trial", spec=DONOR, effective_step=10)




def test_pbt_exploit_resumes_the_donors_checkpoint_on_the_fork(client):
    client.create("donor", DONOR)
    model = tiny_model()
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    sched = AnnealLR(opt, "donor", client=client, window=16)
    seen = []
    train(model, opt, sched, 24, seen)
    checkpoint = {"model": model.state_dict(), "opt": opt.state_dict(),
                  "sched": sched.state_dict()}
    sched.close()
    assert checkpoint["sched"]["last_epoch"] == 24

    # Exploit: the trial copies the donor at the checkpoint; explore: a
    # new spec from the next step, recorded as the "pbt" actor's update.
    client.fork("donor", "trial", 25, spec=EXPLORE, actor="pbt")
    model2 = tiny_model()
    opt2 = torch.optim.SGD(model2.parameters(), lr=0.1, momentum=0.9)
    trial = AnnealLR(opt2, "trial", client=client, window=16)
    model2.load_state_dict(checkpoint["model"])
    opt2.load_state_dict(checkpoint["opt"])
    trial.load_state_dict(checkpoint["sched"])
    resumed = [opt2.param_groups[0]["lr"]]
    train(model2, opt2, trial, 30, resumed)
    trial.close()

    _twin(client, "twin", 25, EXPLORE)
    want = lrs(client, "twin", 55)
    assert resumed == want[24:55]
    assert seen == want[1:25]

    # A checkpoint at or past the fork step, or of a schedule this one was
    # not forked from, is refused with what to do.
    client.fork("donor", "early", 20)
    early = AnnealLR(torch.optim.SGD(tiny_model().parameters(), lr=0.1), "early",
                     client=client)
    with pytest.raises(ValueError, match="fork at step 25"):
        early.load_state_dict(checkpoint["sched"])
    early.close()
    with pytest.raises(ValueError, match="not forked from it"):
        other = AnnealLR(torch.optim.SGD(tiny_model().parameters(), lr=0.1),
                         "twin", client=client)
        try:
            other.load_state_dict(checkpoint["sched"])
        finally:
            other.close()



def test_annealctl_fork(server, client, tmp_path):
    client.create("donor", DONOR)
    spec = tmp_path / "explore.yaml"
    spec.write_text("max_lr: 0.08\nmin_lr: 0.0001\n"
                    "warm_restarts: {period: 10, period_mult: 2}\n")
    done = annealctl(server, "fork", "donor", "trial", "--at-step", "25",
                      "-f", str(spec), "--label", "trial=7",
                      "--reason", "exploit")
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("forked schedules/trial (revision 1")
    fork = client.get("trial")
    assert fork.labels == {"trial": "7"}
    assert fork.timeline[-1].reason == "exploit"
    _twin(client, "twin", 25, EXPLORE)
    assert lrs(client, "trial", 100) == lrs(client, "twin", 100)

    shown = annealctl(server, "get", "trial")
    assert ("forked from      schedules/donor at step 25 (its revision 1)"
            in shown.stdout)
    missing_step = annealctl(server, "fork", "donor", "t2")
    assert missing_step.returncode == 2
    assert "--at-step" in missing_step.stderr
    no_source = annealctl(server, "fork", "nobody", "t2", "--at-step", "3")
    assert no_source.returncode == 3, no_source.stderr
    assert "source" in no_source.stderr


def test_an_acknowledged_fork_survives_kill_9(server, client):
    client.create("donor", DONOR)
    client.evaluate_range("donor", 0, 40)
    fork = client.fork("donor", "trial", 30, spec=EXPLORE)
    server.kill()
    server.start(same_port=True)
    with anneal.Client(server.address, timeout=10) as again:
        for _ in range(50):  # the first call may meet the old connection
            try:
                loaded = again.get("trial")
                break
            except anneal.UnavailableError:
                time.sleep(0.1)
        assert loaded.revision == fork.revision
        assert loaded.timeline == fork.timeline
        assert loaded.max_step_served >= 29
        assert loaded.forked_from == fork.forked_from
        with pytest.raises(anneal.FailedPreconditionError):
            again.update("trial", spec=DONOR, effective_step=29)
