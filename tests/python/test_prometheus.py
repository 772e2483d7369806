"""deploy/ against a real Prometheus: Debian's prometheus (installed by this
test if missing) scrapes a running anneal-server every second, with
deploy/prometheus/alerts.yml loaded, while jobs step, get updated and
restarted and report losses. Then, through Prometheus's HTTP API: every
rule loads and evaluates, every recording rule and every query and
annotation of the Grafana dashboard (deploy/grafana/dashboards/anneal.json,
its variables filled in) parses and returns data, and the values are the
ones served: the LR Prometheus holds for a schedule is the LR the job got.
"""

from __future__ import annotations

import json
import pathlib
import socket
import subprocess
import time
import urllib.parse
import urllib.request

import pytest

from conftest import debian_program

ROOT = pathlib.Path(__file__).resolve().parents[2]
DASHBOARD = ROOT / "deploy" / "grafana" / "dashboards" / "anneal.json"
RULES = ROOT / "deploy" / "prometheus" / "alerts.yml"


def _prometheus() -> str:
    return debian_program("prometheus", "prometheus")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Prometheus:
    def __init__(self, workdir: pathlib.Path, target: str):
        self.port = _free_port()
        config = workdir / "prometheus.yml"
        config.write_text(json.dumps({
            "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
            "rule_files": [str(RULES)],
            "scrape_configs": [{"job_name": "anneal", "static_configs": [
                {"targets": [target]}]}],
        }))
        self.log = open(workdir / "prometheus.log", "wb")
        self.proc = subprocess.Popen(
            [_prometheus(), f"--config.file={config}",
             f"--storage.tsdb.path={workdir / 'tsdb'}",
             f"--web.listen-address=127.0.0.1:{self.port}"],
            stdout=self.log, stderr=self.log)
        deadline = time.monotonic() + 60
        while True:
            try:
                urllib.request.urlopen(self.url("/-/ready"), timeout=2)
                return
            except OSError:
                if time.monotonic() > deadline or self.proc.poll() is not None:
                    self.stop()
                    raise RuntimeError("prometheus did not start; see " +
                                       self.log.name)
                time.sleep(0.2)

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def api(self, path: str, **params) -> dict:
        query = urllib.parse.urlencode(params)
        with urllib.request.urlopen(self.url(f"/api/v1/{path}?{query}"),
                                    timeout=10) as r:
            body = json.load(r)
        assert body["status"] == "success", body
        return body["data"]

    def query(self, expr: str) -> list:
        return self.api("query", query=expr)["result"]

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
        self.log.close()


def _fill(expr: str) -> str:
    """The dashboard's variables as Grafana would fill them for job-a."""
    return (expr.replace("$instance", ".*").replace("$schedule", "job-a")
            .replace("$metric", ".*").replace("$__rate_interval", "10s"))


def _dashboard_queries():
    board = json.loads(DASHBOARD.read_text())
    for p in board["panels"]:
        for t in p.get("targets", []):
            yield p["title"], t["expr"]
    for a in board["annotations"]["list"]:
        yield "annotation " + a["name"], a["expr"]


@pytest.fixture
def prometheus(tmp_path, server):
    p = Prometheus(tmp_path, f"127.0.0.1:{server.metrics_port}")
    try:
        # Prometheus hands new targets to its scrapers up to 5 s after it
        # starts: wait for the first scrape.
        deadline = time.monotonic() + 30
        while not p.query('up{job="anneal"} == 1'):
            assert time.monotonic() < deadline, "no scrape of anneal in 30 s"
            time.sleep(0.2)
        yield p
    finally:
        p.stop()


def test_dashboard_and_rules_against_real_prometheus(server, client,
                                                     prometheus):
    client.create("job-a", {"max_lr": 0.1, "min_lr": 0.001,
                            "warm_restarts": {"period": 20}})
    client.create("job-b", {"max_lr": 0.05, "cosine": {"period": 1000}})
    served = {}
    step = 0
    start = time.monotonic()
    updated = restarted = False
    # Scrapes see the change: it comes seconds after the first scrape.
    while time.monotonic() < start + 8:
        # Two jobs prefetching windows, reporting every 16 steps.
        for name in ("job-a", "job-b"):
            window = client.evaluate_range(name, step, 16)
            served[name] = window.lr[-1]
            client.report(name, step + 15, {"loss": 2.0 / (1 + step)})
        if not updated and time.monotonic() > start + 3:
            client.update("job-a", spec={"max_lr": 0.08, "min_lr": 0.001,
                                         "warm_restarts": {"period": 20}})
            updated = True
        if not restarted and time.monotonic() > start + 5:
            client.restart("job-b")
            restarted = True
        step += 16
        time.sleep(0.05)
    last_step = step - 1
    for name in ("job-a", "job-b"):
        served[name] = client.evaluate(name, last_step).lr
    with pytest.raises(Exception):
        client.evaluate("nobody", 1)
    time.sleep(3)  # three more scrapes

    # What Prometheus holds is what the jobs were served.
    lr = prometheus.query('anneal_schedule_lr{schedule="job-a"}')
    assert float(lr[0]["value"][1]) == served["job-a"]
    top = prometheus.query('anneal_schedule_max_step_served{schedule="job-b"}')
    assert int(float(top[0]["value"][1])) == last_step
    loss = prometheus.query(
        'anneal_schedule_reported{schedule="job-a", metric="loss"}')
    assert float(loss[0]["value"][1]) == pytest.approx(2.0 / (1 + step - 16))
    changes = prometheus.query(
        'anneal_schedule_changes_total{kind=~"create|update|restart"}')
    assert {c["metric"]["kind"]: float(c["value"][1]) for c in changes} == {
        "create": 2, "update": 1, "restart": 1}
    not_found = prometheus.query(
        'grpc_server_handled_total{grpc_method="Evaluate",'
        'grpc_code="NotFound"}')
    assert float(not_found[0]["value"][1]) == 1

    # Every query of the dashboard runs and returns data.
    empty = [(title, _fill(e)) for title, e in _dashboard_queries()
             if not prometheus.query(_fill(e))]
    assert not empty, "dashboard queries without data: %s" % empty

    # Every rule loaded and evaluates; each recording rule has data; the
    # service is up, so AnnealDown is not firing.
    groups = prometheus.api("rules")["groups"]
    rules = [r for g in groups for r in g["rules"]]
    assert len(rules) == 8
    assert [r["name"] for r in rules if r["health"] != "ok"] == []
    for r in rules:
        if r["type"] == "recording":
            assert prometheus.query(r["name"]), r["name"]
    firing = [a["labels"]["alertname"] for a in prometheus.api("alerts")
              ["alerts"] if a["state"] == "firing"]
    assert "AnnealDown" not in firing
    assert prometheus.query('up{job="anneal"} == 1')
