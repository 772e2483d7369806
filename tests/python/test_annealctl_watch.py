"""annealctl watch against a live server: the catch-up, SYNCED, then live
lines for a create, an update with a reason, a new cycle, a report (with
--reports on) and a delete; -o json gives one parseable object per line."""

from __future__ import annotations

import json
import subprocess
import time

from conftest import BUILD_DIR

SGDR = {"max_lr": 0.1, "min_lr": 0.001, "warm_restarts": {"period": 10}}


def _watch(server, *args):
    return subprocess.Popen(
        [str(BUILD_DIR / "bin" / "annealctl"), "watch",
         "--server", server.address, *args],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _lines(proc, n, timeout=10):
    out, deadline = [], time.monotonic() + timeout
    while len(out) < n and time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            break
        out.append(line.rstrip("\n"))
    return out


def test_watch_prints_every_event(server, client):
    client.create("old", SGDR)
    text = _watch(server, "--reports", "on")
    try:
        assert _lines(text, 2) == [
            "CURRENT schedules/old revision 1: warm_restarts(period 10), "
            "lr 0.1 to 0.001; served -1",
            "SYNCED (live from here)"]
        client.create("job", SGDR)
        client.update("job", display_name="x", reason="rename")
        client.evaluate("job", 3)
        client.evaluate("job", 15)
        client.report("job", 15, {"loss": 0.5})
        client.delete("job", actor="ops", reason="done")
        lines = _lines(text, 5)
    finally:
        text.terminate()
        text.wait(10)
    assert lines[0].startswith("CREATED schedules/job revision 1: ")
    assert lines[1].startswith("UPDATED schedules/job revision 2: ")
    assert lines[2] == "CYCLE schedules/job revision 2: cycle 1 from step 10"
    assert lines[3] == "REPORTED schedules/job revision 2: step 15 loss=0.5"
    assert lines[4] == 'DELETED schedules/job revision 2: by ops; reason "done"'


def test_watch_json_is_one_object_per_line(server, client):
    client.create("a", SGDR)
    proc = _watch(server, "a", "-o", "json")
    try:
        first = [json.loads(l) for l in _lines(proc, 2)]
    finally:
        proc.terminate()
        proc.wait(10)
    assert first[0]["kind"] == "CURRENT"
    assert first[0]["name"] == "schedules/a"
    assert first[1]["kind"] == "SYNCED"


def test_watch_refuses_a_bad_flag(server):
    done = subprocess.run(
        [str(BUILD_DIR / "bin" / "annealctl"), "watch", "--server",
         server.address, "--reports", "maybe"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, timeout=10)
    assert done.returncode == 2
    assert "--reports: must be on or off" in done.stderr


def test_a_plateau_cut_shows_the_new_peak(server, client):
    client.create("cut", {"max_lr": 0.1, "constant": {},
                          "plateau": {"metric": "loss", "patience": 0,
                                      "factor": 0.5}})
    text = _watch(server, "cut")
    try:
        assert _lines(text, 2)[1] == "SYNCED (live from here)"
        client.evaluate("cut", 1)
        client.report("cut", 1, {"loss": 1.0})
        client.report("cut", 2, {"loss": 2.0})   # not better: cut at once
        line = _lines(text, 1)[0]
    finally:
        text.terminate()
        text.wait(10)
    assert line.startswith("UPDATED schedules/cut revision 2: "), line
    assert "; peak now 0.05 from step 2; reason \"plateau: loss" in line, line
