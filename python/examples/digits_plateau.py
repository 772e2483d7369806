#!/usr/bin/python3
"""Warmup + SGDR on digits whose peak is cut when val_loss stops improving.

The worked example of docs/adaptive.md: the MLP and data of digits_sgdr.py,
SGD with momentum 0.9, an anneal schedule with a plateau policy on the
validation loss the job reports after each epoch, the top Hessian
eigenvalue reported every 100 steps (anneal.curvature), and at the end the
timeline (each cut with its evidence) and Diagnose's findings.

    scripts/serve.sh &                       # a server on 127.0.0.1:50051
    PYTHONPATH=python /usr/bin/python3 python/examples/digits_plateau.py

The schedule is created if it does not exist yet (`--schedule`, default
digits-plateau). tests/python/test_plateau.py runs main() too.
"""

from __future__ import annotations

import argparse
import importlib.util
import pathlib
import sys
from typing import List, Optional

import torch

HERE = pathlib.Path(__file__).resolve().parent


def _digits_sgdr():
    spec = importlib.util.spec_from_file_location("digits_sgdr",
                                                  HERE / "digits_sgdr.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


SPEC = {
    "max_lr": 0.3, "min_lr": 0.001,
    "warmup": {"steps": 23},
    "warm_restarts": {"period": 115},   # 5 epochs of 23 steps
    "plateau": {"metric": "val_loss", "mode": "MIN", "patience": 3,
                "factor": 0.5, "cooldown": 2, "min_lr": 0.02},
}


def main(argv: Optional[List[str]] = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--server", default=None,
                   help="HOST:PORT (default $ANNEAL_SERVER or 127.0.0.1:50051)")
    p.add_argument("--schedule", default="digits-plateau")
    p.add_argument("--epochs", type=int, default=60)
    p.add_argument("--window", type=int, default=8,
                   help="steps prefetched: a cut lands at most this late")
    args = p.parse_args(argv)

    import anneal
    from anneal.curvature import CurvatureMonitor
    from anneal.torch import AnnealLR

    ex = _digits_sgdr()
    ex.deterministic()
    cfg = ex.Config(lr=SPEC["max_lr"])
    xtr, ytr, xte, yte = ex.load_data()
    client = anneal.Client(args.server)
    try:
        client.create(args.schedule, SPEC, reason="examples/digits_plateau.py")
    except anneal.AlreadyExistsError:
        print("using the existing schedules/%s" % args.schedule)
    model = ex.make_model(cfg)
    opt = torch.optim.SGD(model.parameters(), lr=cfg.lr, momentum=0.9)
    sched = AnnealLR(opt, args.schedule, client=client, window=args.window)
    curvature = CurvatureMonitor(model.parameters(), reporter=sched, every=100)
    loss_fn = torch.nn.CrossEntropyLoss()
    per_epoch = len(xtr) // cfg.batch_size
    t = 0
    for epoch in range(args.epochs):
        for _ in range(per_epoch):
            idx = ex.batch_indices(cfg, len(xtr), t)
            opt.zero_grad()
            loss = loss_fn(model(xtr[idx]), ytr[idx])
            curvature.maybe_estimate(loss)
            loss.backward()
            if t % 10 == 0:
                sched.report(loss=loss.item())
            opt.step()
            sched.step()
            t += 1
        with torch.no_grad():
            val = loss_fn(model(xte), yte).item()
        sched.report(val_loss=val)
        print("epoch %2d  step %4d  lr %.4g  val_loss %.4f" %
              (epoch, t, opt.param_groups[0]["lr"], val))
    sched.reporter.flush(10)
    sched.close()

    s = client.get(args.schedule)
    print("\ntimeline:")
    for seg in s.timeline:
        print("  from %5d  %-8s %s" % (seg.from_step, seg.kind,
                                       seg.reason or ""))
    print("\nplateau state: best %.4f, %d reports, %d decisions" %
          (s.plateau_state.best, s.plateau_state.reports,
           s.plateau_state.decisions))
    print("\nfindings:")
    from anneal.v1 import diagnosis_pb2
    for f in client.diagnose(args.schedule).findings:
        print("  %-7s %-24s %s" % (
            diagnosis_pb2.Finding.Severity.Name(f.severity), f.code,
            f.summary))
    client.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
