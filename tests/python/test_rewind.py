"""RewindSchedule from outside: the rollback after a loss spike with a real
optimizer (train, checkpoint at c, train on into the spike, rewind to c + 1
with a lower LR, resume from the checkpoint) checked LR for LR against a
twin given the same update before anything was served; a job left on the
old lineage stopped with StaleLineageError at its next refresh, and its
reports refused; checkpoints past the rewind step refused naming the step to
rewind to; annealctl rewind; and a rewind surviving kill -9."""

from __future__ import annotations

import time

import pytest

anneal = pytest.importorskip("anneal")
torch = pytest.importorskip("torch")

from anneal.torch import AnnealLR  # noqa: E402
from lineage_helpers import annealctl, lrs, tiny_model, train  # noqa: E402

SPEC = {"max_lr": 0.1, "min_lr": 1e-4,
        "warm_restarts": {"period": 10, "period_mult": 2}}
LOWER = {"max_lr": 0.03, "min_lr": 1e-4,
         "warm_restarts": {"period": 10, "period_mult": 2}}





def test_rewind_serves_the_past_then_the_new_spec(client):
    client.create("job", SPEC)
    old = list(client.evaluate_range("job", 0, 80).lr)  # served to 79
    rewound = client.rewind("job", 40, spec=LOWER, reason="loss spike",
                            actor="oncall")
    assert rewound.lineage == 1
    assert rewound.max_step_served == 39
    assert [s.kind for s in rewound.timeline] == ["CREATE", "UPDATE"]
    [r] = rewound.rewinds
    assert (r.lineage, r.to_step, r.abandoned_max_step_served) == (1, 40, 79)
    assert (r.actor, r.reason) == ("oncall", "loss spike")
    assert r.abandoned[0].kind == "CREATE"
    assert r.abandoned[0].spec.max_lr == 0.1  # the old lineage, with its spec

    client.create("twin", SPEC)
    client.update("twin", spec=LOWER, effective_step=40)
    new = lrs(client, "job", 200)
    assert new[:40] == old[:40]  # bit for bit
    assert new == lrs(client, "twin", 200)
    assert new[45] != old[45]

    with pytest.raises(anneal.StaleLineageError,
                       match="rewound to step 40.*below step 40"):
        client.evaluate_range("job", 40, 8, lineage=0)
    with pytest.raises(anneal.FailedPreconditionError):
        client.evaluate("job", 50, lineage=0)
    with pytest.raises(anneal.StaleLineageError):
        client.report("job", 50, {"loss": 2.0}, lineage=0)
    assert client.report("job", 50, {"loss": 1.0}, lineage=1).lineage == 1
    with pytest.raises(anneal.InvalidArgumentError,
                       match=r"to_step: must be in \[0, max_step_served \+ 1"):
        client.rewind("job", 10_000)
    with pytest.raises(anneal.AbortedError):
        client.rewind("job", 10, etag='W/"stale"')
    with pytest.raises(anneal.NotFoundError):
        client.rewind("nobody", 0)


def test_rollback_after_a_loss_spike_with_a_real_optimizer(client):
    client.create("job", SPEC)
    model = tiny_model()
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    sched = AnnealLR(opt, "job", client=client, window=16)
    assert sched.lineage == 0
    seen = []
    train(model, opt, sched, 30, seen)
    checkpoint = {"model": model.state_dict(), "opt": opt.state_dict(),
                  "sched": sched.state_dict()}
    assert checkpoint["sched"]["lineage"] == 0
    c = checkpoint["sched"]["last_epoch"]
    assert c == 30
    spike = []
    train(model, opt, sched, 40, spike)  # on into the spike, to step 70

    # The operator rolls back: a new lineage from the step after the
    # checkpoint, at a lower LR. The job still running is stopped at its
    # next refresh (never served the new lineage under the old one's name).
    client.rewind("job", c + 1, spec=LOWER, actor="oncall",
                  reason="loss spike at 70")
    with pytest.raises(anneal.StaleLineageError, match="below step 31"):
        train(model, opt, sched, 40, [])
    sched.close()

    model2 = tiny_model()
    opt2 = torch.optim.SGD(model2.parameters(), lr=0.1, momentum=0.9)
    resumed_sched = AnnealLR(opt2, "job", client=client, window=16)
    assert resumed_sched.lineage == 1
    model2.load_state_dict(checkpoint["model"])
    opt2.load_state_dict(checkpoint["opt"])
    resumed_sched.load_state_dict(checkpoint["sched"])
    resumed = [opt2.param_groups[0]["lr"]]
    train(model2, opt2, resumed_sched, 60, resumed)
    assert resumed_sched.state_dict()["lineage"] == 1
    resumed_sched.close()

    client.create("twin", SPEC)
    client.update("twin", spec=LOWER, effective_step=c + 1)
    want = lrs(client, "twin", 100)
    assert seen == want[1:31]
    assert resumed == want[30:91]
    assert spike[:10] != resumed[1:11]  # the old lineage's steps differ

    # The spike's checkpoint (step 70, lineage 0) is past the rewind step.
    late = {**checkpoint["sched"], "last_epoch": 70}
    again = AnnealLR(torch.optim.SGD(tiny_model().parameters(), lr=0.1), "job",
                     client=client)
    with pytest.raises(ValueError, match="rewind to step 71"):
        again.load_state_dict(late)
    again.close()



def test_annealctl_rewind(server, client, tmp_path):
    client.create("job", SPEC)
    client.evaluate_range("job", 0, 60)
    spec = tmp_path / "lower.yaml"
    spec.write_text("max_lr: 0.03\nmin_lr: 0.0001\n"
                    "warm_restarts: {period: 10, period_mult: 2}\n")
    done = annealctl(server, "rewind", "job", "--to-step", "25", "-f",
                      str(spec), "--reason", "spike")
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("rewound schedules/job (revision 2")
    assert "lineage 1 from step 25" in done.stdout
    shown = annealctl(server, "get", "job")
    assert "lineage          1" in shown.stdout
    assert "rewinds" in shown.stdout
    row = [line.split() for line in shown.stdout.splitlines()
           if line.strip().startswith("1 ")][-1]
    assert row[:5] == ["1", "25", "59", "2", "1"]
    missing = annealctl(server, "rewind", "job")
    assert missing.returncode == 2
    assert "--to-step" in missing.stderr
    past = annealctl(server, "rewind", "job", "--to-step", "1000")
    assert past.returncode != 0
    assert "to_step" in past.stderr


def test_an_acknowledged_rewind_survives_kill_9(server, client):
    client.create("job", SPEC)
    client.evaluate_range("job", 0, 80)
    rewound = client.rewind("job", 40, spec=LOWER)
    server.kill()
    server.start(same_port=True)
    with anneal.Client(server.address, timeout=10) as again:
        for _ in range(50):  # the first call may meet the old connection
            try:
                loaded = again.get("job")
                break
            except anneal.UnavailableError:
                time.sleep(0.1)
        assert loaded.lineage == 1
        assert loaded.revision == rewound.revision
        assert loaded.timeline == rewound.timeline
        assert loaded.rewinds == rewound.rewinds
        assert loaded.max_step_served == 39  # the old lineage's mark is gone
        with pytest.raises(anneal.StaleLineageError):
            again.evaluate("job", 45, lineage=0)
        # The new lineage may change from step 40 on, even after the crash.
        again.update("job", spec=SPEC, effective_step=40)
