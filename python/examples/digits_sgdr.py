#!/usr/bin/python3
"""Train a small MLP on scikit-learn's digits with SGD + momentum and SGDR.

The LR schedule is an anneal schedule (warm restarts, PyTorch's
CosineAnnealingWarmRestarts T_0=10, T_mult=2) served by an anneal server;
--torch uses PyTorch's own CosineAnnealingWarmRestarts instead, for
comparison. With --no-reset (anneal only keeps momentum across restarts,
as PyTorch does) the two runs are equal weight for weight: the anneal engine
reproduces PyTorch's LRs bit for bit, and the training is deterministic.

    scripts/serve.sh &                       # a server on 127.0.0.1:50051
    PYTHONPATH=python /usr/bin/python3 python/examples/digits_sgdr.py
    PYTHONPATH=python /usr/bin/python3 python/examples/digits_sgdr.py --torch
    PYTHONPATH=python /usr/bin/python3 python/examples/digits_sgdr.py --swa

The schedule is created if it does not exist yet (`--schedule`, default
digits-sgdr). Everything here is also what tests/python/test_torch_training.py
runs, so the example cannot rot.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass, field
from typing import Callable, List, Optional, Tuple

import torch
from sklearn.datasets import load_digits


@dataclass
class Config:
    lr: float = 0.1          # SGD's lr = the schedule's max_lr
    momentum: float = 0.9
    period: int = 10         # T_0
    period_mult: int = 2     # T_mult
    min_lr: float = 0.0      # eta_min
    batch_size: int = 64
    steps: int = 150
    hidden: int = 32
    seed: int = 0


def spec_of(cfg: Config) -> dict:
    """The anneal spec equal to CosineAnnealingWarmRestarts(cfg)."""
    spec = {"max_lr": cfg.lr, "warm_restarts": {
        "period": cfg.period, "period_mult": cfg.period_mult}}
    if cfg.min_lr:
        spec["min_lr"] = cfg.min_lr
    return spec


def deterministic() -> None:
    """Bit-reproducible CPU training: one thread, deterministic kernels."""
    torch.set_num_threads(1)
    torch.use_deterministic_algorithms(True)


def load_data() -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """digits (1797 8x8 images) scaled to [0, 1]; the last 297 for test."""
    digits = load_digits()
    x = torch.tensor(digits.data, dtype=torch.float32) / 16.0
    y = torch.tensor(digits.target, dtype=torch.long)
    return x[:1500], y[:1500], x[1500:], y[1500:]


def make_model(cfg: Config) -> torch.nn.Module:
    torch.manual_seed(cfg.seed)
    return torch.nn.Sequential(torch.nn.Linear(64, cfg.hidden), torch.nn.ReLU(),
                               torch.nn.Linear(cfg.hidden, 10))


def batch_indices(cfg: Config, n: int, step: int) -> torch.Tensor:
    """The minibatch of update `step + 1`: a function of the step alone
    (a fresh permutation per epoch), so a resumed run sees the same data."""
    per_epoch = n // cfg.batch_size
    epoch, k = divmod(step, per_epoch)
    g = torch.Generator().manual_seed(cfg.seed * 1_000_003 + epoch)
    perm = torch.randperm(n, generator=g)
    return perm[k * cfg.batch_size:(k + 1) * cfg.batch_size]


@dataclass
class Run:
    model: torch.nn.Module
    optimizer: torch.optim.Optimizer
    scheduler: object
    lrs: List[float] = field(default_factory=list)      # lr of each update
    losses: List[float] = field(default_factory=list)


def make_run(cfg: Config, make_scheduler: Callable[[torch.optim.Optimizer], object]
             ) -> Run:
    model = make_model(cfg)
    optimizer = torch.optim.SGD(model.parameters(), lr=cfg.lr,
                                momentum=cfg.momentum)
    return Run(model, optimizer, make_scheduler(optimizer))


def train(run: Run, cfg: Config, data, start: int, stop: int,
          after_step: Optional[Callable[[int, Run], None]] = None) -> Run:
    """Updates start+1 .. stop (optimizer.step() then scheduler.step(), the
    PyTorch order); after_step(t, run) sees the state after step t."""
    x, y = data[0], data[1]
    loss_fn = torch.nn.CrossEntropyLoss()
    for step in range(start, stop):
        idx = batch_indices(cfg, len(x), step)
        run.optimizer.zero_grad()
        loss = loss_fn(run.model(x[idx]), y[idx])
        loss.backward()
        run.lrs.append(run.optimizer.param_groups[0]["lr"])
        run.optimizer.step()
        run.scheduler.step()
        run.losses.append(loss.item())
        if after_step is not None:
            after_step(step + 1, run)
    return run


def accuracy(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    with torch.no_grad():
        return (model(x).argmax(1) == y).float().mean().item()


def main(argv: Optional[List[str]] = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--server", default=None,
                   help="HOST:PORT (default $ANNEAL_SERVER or 127.0.0.1:50051)")
    p.add_argument("--schedule", default="digits-sgdr")
    p.add_argument("--torch", action="store_true",
                   help="use PyTorch's CosineAnnealingWarmRestarts instead")
    p.add_argument("--steps", type=int, default=Config.steps)
    p.add_argument("--no-reset", action="store_true",
                   help="keep momentum across warm restarts (as PyTorch)")
    p.add_argument("--swa", action="store_true",
                   help="also keep an SWA average of each cycle's end")
    p.add_argument("--window", type=int, default=256)
    args = p.parse_args(argv)

    cfg = Config(steps=args.steps)
    deterministic()
    data = load_data()
    swa = None

    if args.torch:
        def make(opt):
            return torch.optim.lr_scheduler.CosineAnnealingWarmRestarts(
                opt, T_0=cfg.period, T_mult=cfg.period_mult, eta_min=cfg.min_lr)
    else:
        import anneal
        from anneal.torch import AnnealLR
        client = anneal.Client(args.server)
        try:
            client.create(args.schedule, spec_of(cfg),
                          reason="examples/digits_sgdr.py")
            print("created schedules/%s" % args.schedule)
        except anneal.AlreadyExistsError:
            print("using the existing schedules/%s" % args.schedule)

        def make(opt):
            return AnnealLR(opt, args.schedule, client=client,
                            window=args.window,
                            reset_momentum=not args.no_reset)

    run = make_run(cfg, make)
    if args.swa and not args.torch:
        from anneal.swa import SwaOnSnapshot
        swa = SwaOnSnapshot(run.model)
        run.scheduler.on_snapshot = swa

    def after_step(t: int, r: Run) -> None:
        if args.torch:
            tag = "T_cur=%d" % r.scheduler.T_cur
        else:
            # The loss of update t was measured on the model after t - 1
            # updates: report it at that step (queued, never waits).
            r.scheduler.report(loss=r.losses[-1], step=t - 1)
            res = r.scheduler.last_result
            tag = "cycle %d %s%s" % (res.cycle, res.phase.name,
                                     " restart" if res.restart else "")
        if t % 10 == 0 or t == cfg.steps:
            print("step %4d  lr %.6f  loss %.4f  %s" % (
                t, r.optimizer.param_groups[0]["lr"], r.losses[-1], tag))

    train(run, cfg, data, 0, cfg.steps, after_step)
    test_accuracy = accuracy(run.model, data[2], data[3])
    print("test accuracy %.4f" % test_accuracy)
    if swa is not None and swa.snapshots:
        print("SWA of %d cycle ends: test accuracy %.4f" % (
            len(swa.snapshots), accuracy(swa.averaged, data[2], data[3])))
    if not args.torch:
        run.scheduler.report(test_acc=test_accuracy)   # at the last step
        run.scheduler.close()                          # sends every report
        print("reported %d steps (annealctl reports %s)" % (
            run.scheduler.reporter.sent, args.schedule))
    return 0


if __name__ == "__main__":
    sys.exit(main())
