"""One rank of a torch.distributed (gloo) job for test_torch_hosts.py:
joins the process group from RANK, WORLD_SIZE, MASTER_ADDR and MASTER_PORT,
builds an AnnealLR with create_if_missing (every rank at once), runs STEPS
steps reporting loss = rank + step / 1000, and prints one JSON line: the
LRs it applied and the reporter's counters.

  python3 dist_worker.py TARGET SCHEDULE STEPS REPORT_FROM

With REPORT_FROM "advance" it instead advances the schedule STEPS times
with anneal.torch.advance on every rank and prints the positions.
"""

from __future__ import annotations

import json
import os
import sys

import torch
import torch.distributed as dist

from anneal.torch import AnnealLR

SPEC = {"max_lr": 0.1, "min_lr": 1e-3,
        "warm_restarts": {"period": 10, "period_mult": 2}}


def main() -> int:
    target, schedule, steps, report_from = sys.argv[1:5]
    dist.init_process_group("gloo")
    rank = dist.get_rank()
    if report_from == "advance":
        return advance(target, schedule, int(steps), rank)
    param = torch.nn.Parameter(torch.zeros(3))
    opt = torch.optim.SGD([param], lr=0.1)
    fetch = os.environ.get("ANNEAL_TEST_FETCH", "every_rank")
    sched = AnnealLR(opt, schedule, target=target, create_if_missing=SPEC,
                     report_from=report_from, watch=False, fetch=fetch,
                     window=int(os.environ.get("ANNEAL_TEST_WINDOW", "256")))
    changes = os.environ.get("ANNEAL_TEST_CHANGES") == "1"
    lrs = []
    for step in range(int(steps)):
        if changes and rank == 0 and step == 40:
            # An operator's update mid-run (from the first unserved step).
            sched.client.update(schedule, spec={"max_lr": 0.05, "min_lr": 1e-3,
                                                "cosine": {"period": 100}},
                                reason="mid-run")
        if changes and rank == 0 and step == 70:
            sched.client.restart(schedule, reason="mid-run")
        if changes:
            dist.barrier()  # ranks in lockstep, as DDP's all-reduce keeps them
        opt.step()
        sched.report(loss=rank + step / 1000)
        sched.step()
        lrs.append(opt.param_groups[0]["lr"])
    dist.barrier()
    sched.close()
    fetched = (sched._shared.fetches if sched._shared is not None
               else sched.prefetcher.fetches)
    print(json.dumps({"rank": rank, "lrs": lrs, "fetches": fetched,
                      "refresh_after": sched.prefetcher.refresh_after,
                      "sent": sched.reporter.sent,
                      "skipped": sched.reporter.skipped_other_rank}))
    dist.destroy_process_group()
    return 0


def advance(target, schedule, steps, rank):
    """Every rank advances together: the counter moves once a step."""
    import anneal
    import anneal.torch
    client = anneal.Client(target)
    if rank == 0:
        try:
            client.create(schedule, SPEC)
        except anneal.AlreadyExistsError:
            pass
    dist.barrier()
    refused = ""
    try:
        client.advance(schedule)
    except RuntimeError as e:
        refused = str(e)
    positions, lrs = [], []
    for step in range(steps):
        a = anneal.torch.advance(client, schedule, request_id="s%d" % step)
        positions.append(a.position)
        lrs.append(a.result.lr)
    try:
        anneal.torch.advance(client, "missing")
        missing = ""
    except anneal.NotFoundError as e:
        missing = e.code.name
    dist.barrier()
    print(json.dumps({"rank": rank, "positions": positions, "lrs": lrs,
                      "refused": refused, "missing": missing}))
    dist.destroy_process_group()
    return 0


if __name__ == "__main__":
    sys.exit(main())
