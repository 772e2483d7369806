"""AnnealLR follows a change as it happens (WatchSchedules): after an
update, `scheduler.revision` moves within a few steps instead of after
refresh_after of them, and the LRs it applies are the same as without the
watch (a change starts after the served window either way)."""

from __future__ import annotations

import time

import torch

from anneal.torch import AnnealLR

SPEC = {"max_lr": 0.1, "min_lr": 0.001, "cosine": {"period": 5000}}


def _run(client, name, watch, steps=400, change_at=20):
    """Steps a scheduler `steps` times (2 ms apart), updating the schedule
    at `change_at`; the step at which scheduler.revision moved, and the LRs
    applied."""
    model = torch.nn.Linear(2, 1)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    sched = AnnealLR(opt, name, client=client, window=256, watch=watch)
    lrs, moved = [], None
    try:
        for step in range(steps):
            if step == change_at:
                client.update(name, spec={"max_lr": 0.05, "min_lr": 0.001,
                                          "cosine": {"period": 5000}})
            opt.step()
            sched.step()
            lrs.append(opt.param_groups[0]["lr"])
            if moved is None and sched.revision == 2:
                moved = step
            time.sleep(0.002)
    finally:
        sched.close()
    return moved, lrs


def test_a_change_reaches_the_scheduler_within_a_few_steps(client):
    client.create("watched", SPEC)
    client.create("polled", SPEC)
    watched, lrs_watched = _run(client, "watched", watch=True)
    polled, lrs_polled = _run(client, "polled", watch=False)
    assert watched is not None and polled is not None
    # Without the watch the revision waits for the refresh at 128 steps.
    assert polled >= 127, polled
    assert watched - 20 <= 10, watched
    # The same LRs either way: the change starts after the served window.
    assert lrs_watched == lrs_polled
