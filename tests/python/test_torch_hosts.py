"""AnnealLR where training jobs live: several torch.distributed ranks (gloo
processes on this machine), elastic restarts (create_if_missing), tensor
LRs, hosts' step() keywords, and pickling."""

from __future__ import annotations

import copy
import json
import os
import pickle
import socket
import subprocess
import sys
import threading
import warnings

import pytest

torch = pytest.importorskip("torch")

import anneal  # noqa: E402
from anneal.torch import AnnealLR  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
SPEC = {"max_lr": 0.1, "min_lr": 1e-3,
        "warm_restarts": {"period": 10, "period_mult": 2}}


def _opt(lr=0.1):
    return torch.optim.SGD([torch.nn.Parameter(torch.zeros(3))], lr=lr,
                           momentum=0.9)


def test_create_if_missing_creates_once_and_checks_the_spec(client):
    # Eight "ranks" start at once: one creates, every one gets the schedule.
    errors, schedulers = [], []

    def start():
        try:
            schedulers.append(AnnealLR(_opt(), "elastic", client=client,
                                       create_if_missing=SPEC, watch=False))
        except Exception as e:  # noqa: BLE001 - reported below
            errors.append(e)
    threads = [threading.Thread(target=start) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == [] and len(schedulers) == 8
    s = client.get("elastic")
    assert [g.kind for g in s.timeline] == ["CREATE"]
    assert s.timeline[0].reason == "AnnealLR create_if_missing"
    for sched in schedulers:
        sched.close()
    # A restart of the job (same spec) comes back to it, after updates too.
    client.update("elastic", spec={"max_lr": 0.05, "constant": {}},
                  effective_step=1000)
    again = AnnealLR(_opt(), "elastic", client=client, create_if_missing=SPEC,
                     watch=False)
    again.close()
    # Another job's spec under the same name is refused, naming both.
    with pytest.raises(ValueError) as e:
        AnnealLR(_opt(), "elastic", client=client,
                 create_if_missing=dict(SPEC, max_lr=0.2), watch=False)
    assert "schedules/elastic" in str(e.value)
    assert "0.2" in str(e.value) and "different spec" in str(e.value)
    # Without create_if_missing, a missing schedule is still NOT_FOUND.
    with pytest.raises(anneal.NotFoundError):
        AnnealLR(_opt(), "absent", client=client, watch=False)


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_tensor_lrs_are_filled_in_place(client, dtype):
    name = "tensor-%s" % str(dtype).split(".")[1]
    client.create(name, SPEC)
    opt = _opt(lr=torch.tensor(0.1, dtype=dtype))
    lr_tensor = opt.param_groups[0]["lr"]
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # 0.1 in float32 is max_lr: no scaling
        sched = AnnealLR(opt, name, client=client, watch=False)
    want = client.evaluate_range(name, 0, 40, inspect_only=True)
    for step in range(1, 40):
        opt.step()
        sched.step()
        group_lr = opt.param_groups[0]["lr"]
        assert group_lr is lr_tensor  # the same tensor, never a float
        # The served LR, rounded only by the tensor's own dtype.
        assert group_lr.item() == torch.tensor(want.lr[step], dtype=dtype).item()
    assert sched.get_last_lr() == [want.lr[39]]
    sched.close()


def test_hosts_step_keywords_and_copies(client):
    client.create("hosts", SPEC)
    a_opt, b_opt = _opt(), _opt()
    a = AnnealLR(a_opt, "hosts", client=client, watch=False)
    b = AnnealLR(b_opt, "hosts", client=client, watch=False)
    for _ in range(25):
        a.step()
        b.step(increment=256)  # DeepSpeed's retry after a TypeError
        assert a_opt.param_groups[0]["lr"] == b_opt.param_groups[0]["lr"]
    for how in (pickle.dumps, copy.deepcopy, copy.copy):
        with pytest.raises(TypeError) as e:
            how(a)
        assert "state_dict" in str(e.value)
    a.close()
    b.close()


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _run_ranks(server, schedule, world, report_from, steps=30, **extra_env):
    port = _free_port()
    env = dict(os.environ, **extra_env)
    env = dict(env, MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port),
               WORLD_SIZE=str(world), GLOO_SOCKET_IFNAME="lo",
               PYTHONPATH=os.pathsep.join([os.path.join(HERE, "..", "..",
                                                        "python"), HERE]))
    procs = [subprocess.Popen(
        [sys.executable, os.path.join(HERE, "dist_worker.py"), server.address,
         schedule, str(steps), report_from],
        env=dict(env, RANK=str(r)), stdout=subprocess.PIPE,
        stderr=subprocess.PIPE, text=True) for r in range(world)]
    results = [p.communicate(timeout=120) for p in procs]
    failed = ["rank %d exited %d:\n%s" % (r, p.returncode, err)
              for r, (p, (_, err)) in enumerate(zip(procs, results))
              if p.returncode != 0]
    assert not failed, "\n".join(failed)
    out = [json.loads(stdout.strip().splitlines()[-1])
           for stdout, _ in results]
    return sorted(out, key=lambda o: o["rank"])


@pytest.mark.parametrize("report_from", ["rank0", "per_rank", "all"])
def test_ranks_agree_and_report_once(server, client, report_from):
    name = "ranks-" + report_from.replace("_", "-")
    ranks = _run_ranks(server, name, 3, report_from)
    # Every rank applied the same LRs, step for step: the server's.
    want = client.evaluate_range(name, 1, 30, inspect_only=True)
    for r in ranks:
        assert r["lrs"] == list(want.lr), r["rank"]
    # Each rank refreshes at its own point of the window (256 steps).
    points = [r["refresh_after"] for r in ranks]
    assert all(64 <= p <= 192 for p in points) and len(set(points)) > 1
    s = client.get(name)
    assert [g.kind for g in s.timeline] == ["CREATE"]  # created once
    reports = list(client.list_reports(name))
    assert [r.step for r in reports] == list(range(30))
    names = set().union(*(r.metrics.keys() for r in reports))
    if report_from == "rank0":
        # One report a step, rank 0's; the others counted what they left.
        assert names == {"loss"}
        assert all(r.metrics["loss"] == r.step / 1000 for r in reports)
        assert [o["skipped"] for o in ranks] == [0, 30, 30]
    elif report_from == "per_rank":
        assert names == {"loss", "loss/rank1", "loss/rank2"}
        assert all(r.metrics["loss/rank2"] == 2 + r.step / 1000
                   for r in reports)
    else:
        # Every rank's report of a step replaces the one before: which
        # survives depends on arrival, so only the name is fixed.
        assert names == {"loss"}
        assert all(round(r.metrics["loss"] - r.step / 1000, 9) in (0, 1, 2)
                   for r in reports)
        assert [o["skipped"] for o in ranks] == [0, 0, 0]


def test_advance_moves_the_counter_once_per_step_on_every_rank(server, client):
    ranks = _run_ranks(server, "advanced", 3, "advance", steps=10)
    for r in ranks:
        assert r["positions"] == list(range(1, 11)), r["rank"]
        assert r["lrs"] == ranks[0]["lrs"]
        # A bare Client.advance refuses on a rank of a multi-rank job, and
        # rank 0's error reaches every rank.
        assert "3 torch.distributed ranks" in r["refused"]
        assert r["missing"] == "NOT_FOUND"
    assert client.get("advanced").position == 10


@pytest.mark.parametrize("fetch,world,local,fetchers", [
    ("rank0", 3, None, [0]),
    ("node", 4, "2", [0, 2]),
])
def test_one_rank_fetches_and_broadcasts(server, client, fetch, world, local,
                                         fetchers):
    """fetch="rank0": global rank 0 fetches every window and broadcasts it;
    "node": each node's local rank 0. Every rank applies the server's LR at
    every step; only the fetching ranks call the server."""
    name = "shared-" + fetch
    env = {"ANNEAL_TEST_FETCH": fetch, "ANNEAL_TEST_WINDOW": "16"}
    if local:
        env["LOCAL_WORLD_SIZE"] = local
    ranks = _run_ranks(server, name, world, "rank0", steps=100, **env)
    want = client.evaluate_range(name, 1, 100, inspect_only=True)
    for r in ranks:
        assert r["lrs"] == list(want.lr), r["rank"]
        if r["rank"] in fetchers:
            assert r["fetches"] == 7, r  # windows of 16 for steps 0..100
        else:
            assert r["fetches"] == 0, r


@pytest.mark.parametrize("fetch", ["every_rank", "rank0"])
def test_ranks_agree_through_an_update_a_restart_and_a_job_restart(
        server, client, fetch):
    """Rank 0 updates the schedule at step 40 and restarts it at step 70
    while three ranks train; every rank applies the server's LR at every
    step. Then the job is started again (an elastic restart): it comes back
    to the same schedule (create_if_missing) and still agrees."""
    name = "changes-" + fetch.replace("_", "-")
    env = {"ANNEAL_TEST_FETCH": fetch, "ANNEAL_TEST_WINDOW": "16",
           "ANNEAL_TEST_CHANGES": "1"}
    first = _run_ranks(server, name, 3, "rank0", steps=120, **env)
    s = client.get(name)
    assert [g.kind for g in s.timeline] == ["CREATE", "UPDATE", "RESTART"], [
        (g.kind, g.from_step, g.revision) for g in s.timeline]
    want = client.evaluate_range(name, 1, 120, inspect_only=True)
    for r in first:
        assert r["lrs"] == list(want.lr), r["rank"]
    assert 0.05 in want.lr  # the update took effect within the run
    env["ANNEAL_TEST_CHANGES"] = "0"
    again = _run_ranks(server, name, 3, "rank0", steps=30, **env)
    assert [g.kind for g in client.get(name).timeline] == [
        "CREATE", "UPDATE", "RESTART"]  # no second CREATE
    for r in again:
        assert r["lrs"] == list(want.lr[:30]), r["rank"]
