"""Real training runs with AnnealLR: python/examples/digits_sgdr.py
(an MLP on scikit-learn's digits, SGD with momentum 0.9, SGDR T_0=10,
T_mult=2), deterministic torch (one thread, deterministic algorithms).

* With momentum reset off, anneal's run equals PyTorch's
  CosineAnnealingWarmRestarts run weight for weight (torch.equal).
* With reset on, the momentum buffers are zero right after each restart,
  and the run equals PyTorch's with the buffers zeroed at T_cur == 0.
* A checkpoint (state_dict of model, optimizer and scheduler) taken
  mid-run resumes at the right step: the resumed run equals the straight one.
* A schedule change on the server is picked up within the window.
* Snapshot callbacks: the SWA helper averages each cycle's end.
"""

from __future__ import annotations

import math
import io

import pytest

torch = pytest.importorskip("torch")
anneal = pytest.importorskip("anneal")
from anneal.swa import SwaOnSnapshot  # noqa: E402
from anneal.torch import AnnealLR  # noqa: E402



@pytest.fixture(scope="module")
def data(ex):
    return ex.load_data()


def _cawr(cfg):
    return lambda o: torch.optim.lr_scheduler.CosineAnnealingWarmRestarts(
        o, T_0=cfg.period, T_mult=cfg.period_mult, eta_min=cfg.min_lr)


def _buffers(opt):
    return [opt.state[p]["momentum_buffer"]
            for g in opt.param_groups for p in g["params"]]


def _assert_same_weights(a, b):
    for (name, pa), (_, pb) in zip(a.named_parameters(), b.named_parameters()):
        assert torch.equal(pa, pb), name


def test_training_equals_pytorch_weight_for_weight(client, ex, data):
    cfg = ex.Config(steps=100)
    client.create("digits", ex.spec_of(cfg))
    a = ex.make_run(cfg, lambda o: AnnealLR(o, "digits", client=client,
                                            reset_momentum=False))
    t = ex.make_run(cfg, _cawr(cfg))
    ex.train(a, cfg, data, 0, cfg.steps)
    ex.train(t, cfg, data, 0, cfg.steps)
    assert a.lrs == t.lrs                      # every update's LR, exactly
    _assert_same_weights(a.model, t.model)     # and so every weight
    for ba, bt in zip(_buffers(a.optimizer), _buffers(t.optimizer)):
        assert torch.equal(ba, bt)
    assert a.losses[-1] < a.losses[0] / 3      # it did learn
    assert ex.accuracy(a.model, data[2], data[3]) > 0.8
    a.scheduler.close()


def test_momentum_reset_on_restart(client, ex, data):
    cfg = ex.Config(steps=100)
    client.create("digits-reset", ex.spec_of(cfg))
    a = ex.make_run(cfg, lambda o: AnnealLR(o, "digits-reset", client=client))
    restarts = []

    def check(step, run):
        if run.scheduler.last_result.restart:
            restarts.append(step)
            assert all(torch.count_nonzero(b) == 0
                       for b in _buffers(run.optimizer))
        else:
            assert all(torch.count_nonzero(b) > 0
                       for b in _buffers(run.optimizer))

    ex.train(a, cfg, data, 0, cfg.steps, check)
    assert restarts == [10, 30, 70]

    # The same as PyTorch's scheduler with the buffers zeroed by hand.
    def zero_at_restart(step, run):
        if run.scheduler.T_cur == 0:
            for b in _buffers(run.optimizer):
                b.zero_()

    t = ex.make_run(cfg, _cawr(cfg))
    ex.train(t, cfg, data, 0, cfg.steps, zero_at_restart)
    _assert_same_weights(a.model, t.model)
    a.scheduler.close()


def test_adam_exp_avg_reset(client):
    client.create("adam", {"max_lr": 1e-3,
                           "warm_restarts": {"period": 5}})
    p = torch.nn.Parameter(torch.ones(3))
    opt = torch.optim.Adam([p], lr=1e-3)
    s = AnnealLR(opt, "adam", client=client, reset_exp_avg=True)
    for step in range(1, 12):
        (p * p).sum().backward()
        opt.step()
        s.step()
        zero = torch.count_nonzero(opt.state[p]["exp_avg"]) == 0
        assert zero == (step in (5, 10)), step
        assert torch.count_nonzero(opt.state[p]["exp_avg_sq"]) > 0
    s.close()


def test_state_dict_round_trip_resumes_at_the_right_step(client, ex, data):
    cfg = ex.Config(steps=80)
    client.create("digits-resume", ex.spec_of(cfg))

    def make(snaps):
        return lambda o: AnnealLR(o, "digits-resume", client=client,
                                  on_snapshot=lambda r: snaps.append(r.step))

    straight_snaps = []
    straight = ex.make_run(cfg, make(straight_snaps))
    ex.train(straight, cfg, data, 0, cfg.steps)

    # Checkpoint after step 29: a snapshot step whose callback is still due
    # (it fires once update 30, the cycle's last, has been applied).
    first_snaps = []
    first = ex.make_run(cfg, make(first_snaps))
    ex.train(first, cfg, data, 0, 29)
    buf = io.BytesIO()
    torch.save({"model": first.model.state_dict(),
                "optimizer": first.optimizer.state_dict(),
                "scheduler": first.scheduler.state_dict()}, buf)
    first.scheduler.close()
    assert first_snaps == [9]

    buf.seek(0)
    ckpt = torch.load(buf)
    second_snaps = []
    second = ex.make_run(cfg, make(second_snaps))   # applies lr(0) first
    second.model.load_state_dict(ckpt["model"])
    second.optimizer.load_state_dict(ckpt["optimizer"])
    second.scheduler.load_state_dict(ckpt["scheduler"])
    assert second.scheduler.last_epoch == 29
    assert second.optimizer.param_groups[0]["lr"] == straight.lrs[29]
    ex.train(second, cfg, data, 29, cfg.steps)

    assert second.lrs == straight.lrs[29:]
    _assert_same_weights(second.model, straight.model)
    assert first_snaps + second_snaps == straight_snaps == [9, 29, 69]
    straight.scheduler.close()
    second.scheduler.close()


def _opt(lr=0.1):
    return torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=lr,
                           momentum=0.9)


@pytest.mark.parametrize("window", [32, 256])
def test_revision_change_is_picked_up_within_the_window(client, window):
    client.create("live", {"max_lr": 0.1, "warm_restarts": {"period": 10}})
    opt = _opt()
    s = AnnealLR(opt, "live", client=client, window=window)
    applied = [opt.param_groups[0]["lr"]]
    for _ in range(20):
        s.step()
        applied.append(opt.param_groups[0]["lr"])
    assert s.revision == 1
    # No fetch in flight while the update commits: the server can rewrite
    # steps served during a concurrent update (test_client.py,
    # test_update_never_rewrites_a_served_step); the client then reports it
    # (AnnealMismatchWarning) but cannot undo the steps already applied.
    assert s.prefetcher.settle()
    u = client.update("live", spec={"max_lr": 0.07, "constant": {}},
                      reason="operator")
    effective = u.timeline[-1].from_step
    assert 20 < effective <= 20 + window  # the documented bound
    for _ in range(20 + 2 * window):
        s.step()
        applied.append(opt.param_groups[0]["lr"])
    assert s.revision == 2 and s.prefetcher.mismatches == []
    served = client.evaluate_range("live", 0, len(applied), inspect_only=True)
    assert applied == list(served.lr)  # every step, exactly the timeline's
    assert applied[effective - 1] != 0.07
    assert set(applied[effective:]) == {0.07}
    s.close()


def test_blocking_mode_picks_up_a_change_at_the_next_step(client):
    client.create("live1", {"max_lr": 0.1, "warm_restarts": {"period": 10}})
    opt = _opt()
    s = AnnealLR(opt, "live1", client=client, prefetch=False)
    for _ in range(5):
        s.step()
    u = client.update("live1", spec={"max_lr": 0.05, "constant": {}})
    assert u.timeline[-1].from_step == 6
    s.step()
    assert opt.param_groups[0]["lr"] == 0.05 and s.revision == 2
    s.close()


def test_swa_helper_averages_each_cycle_end(client, ex, data):
    cfg = ex.Config(steps=100)
    client.create("digits-swa", ex.spec_of(cfg))
    ends = []
    run = ex.make_run(cfg, lambda o: AnnealLR(o, "digits-swa", client=client))
    swa = SwaOnSnapshot(run.model)

    def on_snapshot(result):
        swa(result)
        ends.append([p.detach().clone() for p in run.model.parameters()])

    run.scheduler.on_snapshot = on_snapshot
    ex.train(run, cfg, data, 0, cfg.steps)
    assert [r.step for r in swa.snapshots] == [9, 29, 69]
    assert [r.cycle for r in swa.snapshots] == [0, 1, 2]
    for i, p in enumerate(swa.averaged.module.parameters()):
        mean = sum(e[i] for e in ends) / len(ends)
        assert torch.allclose(p, mean, rtol=1e-6, atol=1e-7)
    run.scheduler.close()


def test_noise_std_and_last_result(client):
    client.create("thermo", {"max_lr": 0.1, "constant": {},
                             "thermostat": {"target_update_norm_sq": 1e-4}})
    s = AnnealLR(_opt(), "thermo", client=client)
    s.step()
    assert s.last_result.step == 1 and s.last_result.noise_std is None
    # sqrt(max(0, K / lr^2 - |g|^2) / d) = sqrt((1e-4 / 0.01 - 0) / 100)
    assert s.noise_std(grad_norm_sq=0.0, num_params=100) == pytest.approx(0.01)
    s.close()


def test_the_example_reports_its_losses(ex, server, client, capsys):
    assert ex.main(["--server", server.address, "--steps", "30"]) == 0
    out = capsys.readouterr().out
    assert "reported 31 steps" in out
    reports = {r.step: r.metrics for r in client.list_reports("digits-sgdr")}
    assert sorted(reports) == list(range(31))
    assert all(math.isfinite(reports[t]["loss"]) for t in range(30))
    assert 0.0 < reports[30]["test_acc"] <= 1.0
