"""`wsd` against Hugging Face get_wsd_schedule, including the two cases anneal
could not express before: num_decay_steps = 0 and num_cycles != 0.5.

The reference is HF transformers @ 005edacb, src/transformers/optimization.py
`_get_wsd_scheduler_lambda`, transcribed below in float64; anneal's LRs come
from annealctl preview (the engine, as the server serves them).
"""

from __future__ import annotations

import csv
import io
import itertools
import json
import math
import subprocess

import pytest

from conftest import BUILD_DIR


def hf_wsd_factor(current_step, *, num_warmup_steps, num_stable_steps,
                  num_decay_steps, warmup_type, decay_type, min_lr_ratio,
                  num_cycles):
    """HF's _get_wsd_scheduler_lambda, operation for operation."""
    if current_step < num_warmup_steps:
        progress = float(current_step) / float(max(1, num_warmup_steps))
        if warmup_type == "linear":
            factor = progress
        elif warmup_type == "cosine":
            factor = 0.5 * (1.0 - math.cos(math.pi * progress))
        elif warmup_type == "1-sqrt":
            factor = 1.0 - math.sqrt(1.0 - progress)
        factor = factor * (1.0 - min_lr_ratio) + min_lr_ratio
        return max(0.0, factor)
    if current_step < num_warmup_steps + num_stable_steps:
        return 1.0
    if current_step < num_warmup_steps + num_stable_steps + num_decay_steps:
        progress = float(current_step - num_warmup_steps - num_stable_steps) \
            / float(max(1, num_decay_steps))
        if decay_type == "linear":
            factor = 1.0 - progress
        elif decay_type == "cosine":
            factor = 0.5 * (1.0 + math.cos(
                math.pi * float(num_cycles) * 2.0 * progress))
        elif decay_type == "1-sqrt":
            factor = 1.0 - math.sqrt(progress)
        factor = factor * (1.0 - min_lr_ratio) + min_lr_ratio
        return max(0.0, factor)
    return min_lr_ratio


SHAPES = {"linear": "LINEAR", "cosine": "COSINE", "1-sqrt": "SQRT"}


def anneal_lrs(spec, steps, tmp_path):
    path = tmp_path / "spec.json"
    path.write_text(json.dumps(spec))
    done = subprocess.run(
        [str(BUILD_DIR / "bin" / "annealctl"), "preview", "-f", str(path),
         "--steps", str(steps), "-o", "csv"],
        check=True, stdout=subprocess.PIPE, text=True)
    return list(csv.DictReader(io.StringIO(done.stdout)))


def port(max_lr, w, s, d, warmup_type, decay_type, r, num_cycles):
    """The anneal spec of get_wsd_schedule(optimizer with lr=max_lr, ...)."""
    wsd = {"warmup_steps": w, "stable_steps": s, "decay_steps": d,
           "warmup_shape": SHAPES[warmup_type],
           "decay_shape": SHAPES[decay_type]}
    if decay_type == "cosine" and num_cycles != 0.5:
        wsd["num_cycles"] = num_cycles
    return {"max_lr": max_lr, "min_lr": max_lr * r, "wsd": wsd}


CASES = [
    # (W, S, D, min_lr_ratio, num_cycles)
    (10, 20, 30, 0.0, 0.5),
    (10, 20, 30, 0.1, 0.5),
    (0, 15, 40, 0.05, 0.5),
    (7, 11, 0, 0.0, 0.5),     # num_decay_steps = 0
    (7, 11, 0, 0.2, 0.5),
    (0, 0, 0, 0.3, 0.5),
    (5, 5, 50, 0.0, 1.0),     # a full wave: back up to the peak
    (5, 5, 50, 0.1, 0.25),    # a quarter wave, then the drop to r
    (5, 5, 50, 0.1, 1.75),
    (3, 0, 17, 0.01, 3.3),
]


@pytest.mark.parametrize("case", CASES, ids=lambda c: "W%d_S%d_D%d_r%g_nc%g"
                         % c)
def test_wsd_equals_hf(case, tmp_path):
    w, s, d, r, nc = case
    max_lr = 3e-4
    steps = w + s + d + 20
    for warmup_type, decay_type in itertools.product(SHAPES, SHAPES):
        if decay_type != "cosine" and nc != 0.5:
            continue  # HF ignores num_cycles there; anneal refuses it
        rows = anneal_lrs(port(max_lr, w, s, d, warmup_type, decay_type, r,
                               nc), steps, tmp_path)
        for t, row in enumerate(rows):
            want = max_lr * hf_wsd_factor(
                t, num_warmup_steps=w, num_stable_steps=s, num_decay_steps=d,
                warmup_type=warmup_type, decay_type=decay_type,
                min_lr_ratio=r, num_cycles=nc)
            got = float(row["lr"])
            assert got == pytest.approx(want, rel=1e-12, abs=1e-18), (
                warmup_type, decay_type, t, got, want)
        # The snapshot is the floor step W+S+D, where HF returns r.
        floor = w + s + d
        assert [t for t, row in enumerate(rows) if row["snapshot"] == "1"] \
            == [floor]
        assert rows[floor + 1]["phase"] == "HOLD"
