"""Plateau policies (docs/adaptive.md) against PyTorch's ReduceLROnPlateau,
through a real server:

* The same metric sequence fed to torch.optim.lr_scheduler.ReduceLROnPlateau
  and to a schedule with `plateau` gives the same LRs, bit for bit, for every
  mode and threshold mode, with patience, cooldown, min_lr and eps.
* The policy's counters survive kill -9 in the middle of the sequence.
* Reports of one step from several ranks are counted once.
* A real training run on digits whose validation loss plateaus gets its LR
  cut, and equals the same run under ReduceLROnPlateau weight for weight.
"""

from __future__ import annotations

import math
import random

import pytest

torch = pytest.importorskip("torch")
anneal = pytest.importorskip("anneal")


CONFIGS = [
    {},
    {"patience": 2},
    {"patience": 1, "cooldown": 2},
    {"patience": 0, "factor": 0.5, "min_lr": 0.02},
    {"mode": "max", "patience": 1},
    {"mode": "max", "patience": 1, "threshold_mode": "abs",
     "threshold": 0.01},
    {"mode": "min", "patience": 1, "threshold_mode": "abs", "threshold": 0.05,
     "cooldown": 1, "eps": 1e-3},
    {"patience": 3, "threshold": 0.0, "factor": 0.3, "min_lr": 1e-4},
]


def torch_kwargs(cfg):
    return dict(cfg)


def anneal_plateau(cfg):
    p = {"metric": "val_loss"}
    for k, v in cfg.items():
        p[k] = v.upper() if k in ("mode", "threshold_mode") else v
    return p


def values(seed, n):
    """A noisy curve that improves, stalls, improves again: every branch of
    the policy (better, bad, cooldown, a cut at min_lr) is taken."""
    rng = random.Random(seed)
    out, v = [], 1.0
    for i in range(n):
        v *= 0.9 if i % 11 < 3 else 1.0
        out.append(v + rng.uniform(-0.02, 0.02))
    out[n // 2] = float("nan")  # a diverged evaluation is a bad one
    return out


def torch_lrs(cfg, seq, lr=0.1):
    p = torch.nn.Parameter(torch.zeros(1))
    opt = torch.optim.SGD([p], lr=lr)
    sched = torch.optim.lr_scheduler.ReduceLROnPlateau(opt, **torch_kwargs(cfg))
    lrs = []
    for v in seq:
        lrs.append(opt.param_groups[0]["lr"])
        sched.step(v)
    return lrs


@pytest.mark.parametrize("cfg", CONFIGS, ids=lambda c: str(c) or "defaults")
def test_same_lrs_as_reduce_lr_on_plateau(client, cfg):
    seq = values(len(str(cfg)), 60)
    want = torch_lrs(cfg, seq)
    client.create("p", {"max_lr": 0.1, "constant": {},
                        "plateau": anneal_plateau(cfg)})
    got = []
    for step, v in enumerate(seq):
        got.append(client.evaluate("p", step).lr)
        client.report("p", step, {"val_loss": v})
    assert got == want  # bit for bit
    s = client.get("p")
    cuts = [seg for seg in s.timeline if seg.kind == "PLATEAU"]
    assert len(cuts) == len(set(want)) - 1
    for seg in cuts:
        assert seg.actor == "plateau"
        assert seg.plateau.metric == "val_loss"
        assert seg.plateau.new_level < seg.plateau.old_level
        assert seg.reason.startswith("plateau: val_loss did not improve")
        assert seg.plateau.bad_reports == cfg.get("patience", 10) + 1


def reconnected(client, call, *args):
    """`call` once the channel is back (a killed server closes it)."""
    import time
    deadline = time.monotonic() + 20
    while True:
        try:
            return call(*args)
        except anneal.UnavailableError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)


@pytest.fixture
def exact_mark_server(tmp_path):
    """--served_headroom=0: the durable served mark is the last step served,
    so after kill -9 a decision lands where it would have without the crash
    (with the default headroom it lands past the mark, up to 1024 steps
    later: docs/adaptive.md)."""
    from conftest import ServerProcess
    s = ServerProcess(tmp_path, extra=["--served_headroom=0"])
    s.start()
    yield s
    s.kill()


def test_counters_survive_kill_9(exact_mark_server):
    server = exact_mark_server
    client = anneal.Client(server.address, timeout=10)
    cfg = {"patience": 2, "cooldown": 1, "factor": 0.5}
    seq = values(7, 50)
    want = torch_lrs(cfg, seq)
    client.create("k", {"max_lr": 0.1, "constant": {},
                        "plateau": anneal_plateau(cfg)})
    got, kills = [], 0
    for step, v in enumerate(seq):
        state = client.get("k").plateau_state
        # Kill mid bad run, and right after a cut (cooldown pending).
        if (state is not None and (state.bad_reports == 2 or
                                   state.cooldown_left == 1)) and kills < 4:
            before = client.get("k").proto
            server.kill()
            server.start(same_port=True)
            kills += 1
            after = reconnected(client, client.get, "k").proto
            assert after.plateau_state.SerializeToString() == \
                before.plateau_state.SerializeToString()
            assert [x.SerializeToString() for x in after.timeline] == \
                [x.SerializeToString() for x in before.timeline]
        got.append(client.evaluate("k", step).lr)
        client.report("k", step, {"val_loss": v})
    assert kills == 4 and len(set(want)) >= 3  # cuts before and after kills
    assert got == want
    client.close()


def test_a_step_reported_by_every_rank_counts_once(server, client):
    client.create("r", {"max_lr": 0.1, "constant": {},
                        "plateau": {"metric": "val_loss", "patience": 0}})
    for rank in range(4):  # rank 0 first, then the others, then a retry
        client.report("r", 10, {"val_loss": 1.0 + rank, "rank": rank})
    state = client.get("r").plateau_state
    assert state.reports == 1 and state.best == 1.0 and state.last_step == 10
    client.report("r", 5, {"val_loss": 0.1})  # late: not counted
    assert client.get("r").plateau_state.reports == 1
    client.report("r", 20, {"val_loss": 2.0})  # bad, patience 0: a cut
    s = client.get("r")
    assert [seg.kind for seg in s.timeline] == ["CREATE", "PLATEAU"]
    assert s.timeline[1].from_step == 20
    assert client.evaluate("r", 20).lr == 0.1 * 0.1
    import urllib.request
    metrics = urllib.request.urlopen(
        "http://127.0.0.1:%d/metrics" % server.metrics_port).read().decode()
    assert 'anneal_schedule_changes_total{kind="plateau"} 1' in metrics


def test_a_report_far_past_the_served_steps_is_not_counted(client):
    client.create("far", {"max_lr": 0.1, "constant": {},
                          "plateau": {"metric": "val_loss", "patience": 0}})
    client.evaluate("far", 10)
    # One stray report at 2^62 would end the policy: nothing below it
    # counts. Past --plateau_max_report_lead (100000) it is stored, not
    # counted.
    client.report("far", 2 ** 62, {"val_loss": 1.0})
    client.report("far", 100_010 + 1, {"val_loss": 1.0})
    state = client.get("far").plateau_state
    assert state is None or state.reports == 0
    assert [r.step for r in client.list_reports("far")] == [100_011, 2 ** 62]
    client.report("far", 100_010, {"val_loss": 1.0})  # at the lead: counted
    state = client.get("far").plateau_state
    assert state.reports == 1 and state.last_step == 100_010


def test_cut_never_lands_on_a_served_step(client):
    client.create("w", {"max_lr": 1, "cosine": {"period": 1000},
                        "plateau": {"metric": "val_loss", "patience": 0,
                                    "factor": 0.5}})
    served = client.evaluate_range("w", 0, 300)  # a prefetched window
    client.report("w", 0, {"val_loss": 1.0})
    client.report("w", 1, {"val_loss": 1.0})  # decides at step 1
    s = client.get("w")
    assert s.timeline[-1].kind == "PLATEAU"
    assert s.timeline[-1].from_step == 300
    again = client.evaluate_range("w", 0, 301)
    assert list(again.lr[:300]) == list(served.lr)
    assert again.lr[300] == served.lr[299] * 0 + again.lr[300]
    plain = client.simulate({"max_lr": 1, "cosine": {"period": 1000}}, 300, 1)
    assert again.lr[300] == plain.lr[0] / 1.0 * 0.5


def test_update_takes_the_new_spec_as_given(client):
    spec = {"max_lr": 0.1, "constant": {},
            "plateau": {"metric": "val_loss", "patience": 0}}
    client.create("u", spec)
    client.report("u", 0, {"val_loss": 1.0})
    client.report("u", 1, {"val_loss": 1.0})
    assert client.evaluate("u", 5).lr == 0.1 * 0.1
    client.update("u", spec=dict(spec, max_lr=0.05))
    s = client.get("u")
    assert s.plateau_state is None
    assert client.evaluate("u", s.timeline[-1].from_step).lr == 0.05


def test_restart_action(client):
    client.create("a", {"max_lr": 1, "cosine": {"period": 100},
                        "plateau": {"metric": "acc", "mode": "MAX",
                                    "patience": 1, "action": "RESTART"}})
    for step, acc in enumerate([0.5, 0.5, 0.5]):
        client.evaluate("a", step)
        client.report("a", step, {"acc": acc})
    s = client.get("a")
    assert s.timeline[-1].kind == "RESTART" and s.timeline[-1].from_step == 3
    r = client.evaluate("a", 3)
    assert r.restart and r.lr == 1.0


def test_bad_policies_are_refused_naming_the_field(client):
    with pytest.raises(anneal.InvalidArgumentError) as e:
        client.create("b", {"max_lr": 0.1, "constant": {},
                            "plateau": {"metric": "val_loss", "factor": 2}})
    assert "plateau.factor: must be in (0, 1), got 2" in str(e.value)


# -- a real run ---------------------------------------------------------------

def digits_run(ex, lr_at, report, epochs, cfg):
    """SGD with momentum on digits, `lr_at(t)` before update t+1 and
    `report(t, val_loss)` after each epoch of t updates."""
    xtr, ytr, xte, yte = ex.load_data()
    model = ex.make_model(cfg)
    opt = torch.optim.SGD(model.parameters(), lr=cfg.lr, momentum=0.9)
    loss_fn = torch.nn.CrossEntropyLoss()
    per_epoch = len(xtr) // cfg.batch_size
    t, lrs = 0, []
    for _ in range(epochs):
        for _ in range(per_epoch):
            for g in opt.param_groups:
                g["lr"] = lr_at(t, opt)
            lrs.append(opt.param_groups[0]["lr"])
            idx = ex.batch_indices(cfg, len(xtr), t)
            opt.zero_grad()
            loss_fn(model(xtr[idx]), ytr[idx]).backward()
            opt.step()
            t += 1
        with torch.no_grad():
            val = loss_fn(model(xte), yte).item()
        report(t, val)
    return model, lrs


def test_digits_plateau_cuts_like_pytorch(ex, client):
    cfg = ex.Config(lr=0.2, hidden=32)
    epochs = 40
    client.create("digits", {"max_lr": cfg.lr, "constant": {},
                             "plateau": {"metric": "val_loss", "patience": 2,
                                         "factor": 0.2}})
    ours, our_lrs = digits_run(
        ex, lambda t, opt: client.evaluate("digits", t).lr,
        lambda t, v: client.report("digits", t, {"val_loss": v}), epochs, cfg)

    holder = {}

    def torch_lr(t, opt):
        if "s" not in holder:
            holder["s"] = torch.optim.lr_scheduler.ReduceLROnPlateau(
                opt, patience=2, factor=0.2)
        return opt.param_groups[0]["lr"]

    theirs, their_lrs = digits_run(
        ex, torch_lr, lambda t, v: holder["s"].step(v), epochs, cfg)
    assert our_lrs == their_lrs
    for a, b in zip(ours.parameters(), theirs.parameters()):
        assert torch.equal(a, b)
    cuts = [s for s in client.get("digits").timeline if s.kind == "PLATEAU"]
    assert cuts, "the validation loss never plateaued"
    assert min(our_lrs) < cfg.lr
    first = cuts[0]
    assert first.plateau.report_step == first.from_step  # cut at once
    assert all(not math.isnan(v) for v in first.plateau.bad_values)


def test_client_diagnose_reads_findings(client):
    client.create("d", {"max_lr": 0.1, "constant": {}})
    response = client.diagnose("d")
    assert response.name == "schedules/d"
    assert response.findings  # inconclusive ones when nothing is reported
    with pytest.raises(anneal.InvalidArgumentError) as e:
        client.diagnose("d", validation_metric="9x")
    assert e.value.field == "validation_metric"


def test_worked_example_runs(server, capsys):
    """python/examples/digits_plateau.py, the worked example of
    docs/adaptive.md, shortened: the policy cuts and Diagnose answers."""
    from conftest import load_example
    module = load_example("digits_plateau")
    assert module.main(["--server", server.address, "--epochs", "12"]) == 0
    out = capsys.readouterr().out
    assert "PLATEAU  plateau: val_loss did not improve" in out
    assert "PHASE_" in out and "DIVERGENCE_" in out


def test_annealctl_get_shows_the_policy(server, client):
    import subprocess
    from conftest import BUILD_DIR
    client.create("g", {"max_lr": 0.1, "constant": {},
                        "plateau": {"metric": "val_loss", "patience": 0}})
    client.report("g", 0, {"val_loss": 1.0})
    client.report("g", 1, {"val_loss": 2.0})
    out = subprocess.run(
        [str(BUILD_DIR / "bin" / "annealctl"), "--server", server.address,
         "get", "g"], check=True, capture_output=True, text=True).stdout
    assert ("plateau          val_loss MIN: best 1, 0 bad reports (patience "
            "0), cooldown 0, 2 reports to step 1, 1 decisions") in out
    assert "LR_LEVEL" in out
    row = [l for l in out.splitlines() if " PLATEAU " in l]
    assert len(row) == 1 and " 0.010000000000000002 " in row[0]


def test_a_decision_never_replaces_a_scheduled_change(client):
    spec = {"max_lr": 0.1, "constant": {},
            "plateau": {"metric": "val_loss", "patience": 0}}
    client.create("f", spec)
    client.report("f", 0, {"val_loss": 1.0})
    later = dict(spec, max_lr=0.05)
    client.update("f", spec=later, effective_step=1000)
    # The update started the policy afresh: step 1 is its first report,
    # step 2 is bad and decides, before the scheduled change.
    client.report("f", 1, {"val_loss": 2.0})
    client.report("f", 2, {"val_loss": 3.0})
    s = client.get("f")
    assert s.plateau_state.decisions == 1 and s.plateau_state.reports == 2
    assert [seg.kind for seg in s.timeline] == ["CREATE", "UPDATE"]
    assert s.timeline[1].from_step == 1000
    assert client.evaluate("f", 500).lr == 0.1


def test_a_full_timeline_still_counts_reports(tmp_path):
    """With the timeline at --max_timeline_segments, decisions stop (logged)
    but reports are still answered and counted."""
    from conftest import ServerProcess
    server = ServerProcess(tmp_path, extra=["--max_timeline_segments=3"])
    server.start()
    try:
        c = anneal.Client(server.address, timeout=10)
        c.create("full", {"max_lr": 1, "cosine": {"period": 1000},
                          "plateau": {"metric": "val_loss", "patience": 0,
                                      "action": "RESTART"}})
        for step in range(10):
            c.report("full", step, {"val_loss": 1.0})
        s = c.get("full")
        assert [seg.kind for seg in s.timeline] == ["CREATE", "RESTART",
                                                    "RESTART"]
        assert s.plateau_state.reports == 10
        assert s.plateau_state.decisions == 9
        assert "is not applied: timeline: must hold at most 3" in \
            server.log_path.read_text()
        c.close()
    finally:
        server.kill()
