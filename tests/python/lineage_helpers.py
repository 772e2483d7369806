"""What the fork, rewind and PBT tests share: a tiny model trained with a
real optimizer and scheduler, the LRs a schedule serves, and annealctl."""

from __future__ import annotations

import subprocess

import torch

from conftest import BUILD_DIR


def lrs(client, name, count):
    """Steps [0, count) of `name`, looked at (not served)."""
    return list(client.evaluate_range(name, 0, count, inspect_only=True).lr)


def tiny_model():
    torch.manual_seed(0)
    return torch.nn.Linear(4, 1)


def train(model, opt, sched, steps, seen):
    """`steps` optimizer steps; appends the LR each step leaves set."""
    data = torch.linspace(-1, 1, 32).reshape(8, 4)
    for _ in range(steps):
        loss = (model(data) ** 2).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
        seen.append(opt.param_groups[0]["lr"])


def annealctl(server, *args):
    return subprocess.run(
        [str(BUILD_DIR / "bin" / "annealctl"), "--server", server.address,
         *args], capture_output=True, text=True)
