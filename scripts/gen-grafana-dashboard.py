#!/usr/bin/env python3
"""Writes deploy/grafana/dashboards/anneal.json from the panel table below,
so that every query on the dashboard is in one readable place (and the live
Prometheus test, tests/python/test_prometheus.py, runs each of them).

    scripts/gen-grafana-dashboard.py           # rewrite the JSON
    scripts/gen-grafana-dashboard.py --check   # exit 1 if it is stale
"""
import json
import pathlib
import sys

ROOT = pathlib.Path(__file__).resolve().parent.parent
OUT = ROOT / "deploy" / "grafana" / "dashboards" / "anneal.json"

I = 'instance=~"$instance"'
S = 'instance=~"$instance", schedule=~"$schedule"'
R = "$__rate_interval"

# (row, title, kind, unit, [(PromQL, legend)], width)
PANELS = [
    ("Fleet", "Requests per second by method", "timeseries", "reqps",
     [(f'sum by (grpc_method) (rate(grpc_server_handled_total{{{I}}}[{R}]))',
       "{{grpc_method}}")], 12),
    ("Fleet", "Errors per second by method and code", "timeseries", "reqps",
     [(f'sum by (grpc_method, grpc_code) (rate(grpc_server_handled_total'
       f'{{{I}, grpc_code!="OK"}}[{R}]))', "{{grpc_method}} {{grpc_code}}")],
     12),
    # Unary only: a WatchSchedules stream lasts as long as its client.
    ("Fleet", "Latency p50 and p99 by method (unary calls)", "timeseries", "s",
     [(f'histogram_quantile(0.5, sum by (grpc_method, le) (rate('
       f'grpc_server_handling_seconds_bucket{{{I}, grpc_type="unary"}}'
       f'[{R}])))', "p50 {{grpc_method}}"),
      (f'histogram_quantile(0.99, sum by (grpc_method, le) (rate('
       f'grpc_server_handling_seconds_bucket{{{I}, grpc_type="unary"}}'
       f'[{R}])))', "p99 {{grpc_method}}")], 12),
    ("Fleet", "Durable write latency (submission to fsync)", "timeseries", "s",
     [(f'histogram_quantile(0.5, sum by (le) (rate('
       f'anneal_store_write_seconds_bucket{{{I}}}[{R}])))', "p50"),
      (f'histogram_quantile(0.99, sum by (le) (rate('
       f'anneal_store_write_seconds_bucket{{{I}}}[{R}])))', "p99")], 12),
    ("Fleet", "Batches per commit (group commit)", "timeseries", "short",
     [(f'sum(rate(anneal_store_batches_total{{{I}}}[{R}])) / '
       f'sum(rate(anneal_store_commits_total{{{I}}}[{R}]))', "batches/commit")],
     8),
    ("Fleet", "Pending writes and store state", "timeseries", "short",
     [(f'sum by (instance) (anneal_store_pending_batches{{{I}}})',
       "pending {{instance}}"),
      (f'max by (instance) (anneal_store_failed{{{I}}})',
       "failed {{instance}}")], 8),
    ("Fleet", "Schedules, steps served per second", "timeseries", "short",
     [(f'sum(anneal_schedules{{{I}}})', "schedules"),
      (f'sum by (method) (rate(anneal_steps_served_total{{{I}}}[{R}]))',
       "steps/s {{method}}")], 8),
    ("Schedule $schedule", "LR over time (restarts and updates marked)",
     "timeseries", "short",
     [(f'anneal_schedule_lr{{{S}}}', "lr {{schedule}}"),
      (f'anneal_schedule_reported{{{S}, metric=~"$metric"}}',
       "{{metric}} {{schedule}}")], 12),
    ("Schedule $schedule", "LR over steps", "xychart", "short",
     [(f'anneal_schedule_max_step_served{{{S}}}', "step"),
      (f'anneal_schedule_lr{{{S}}}', "lr")], 12),
    ("Schedule $schedule", "Steps per second", "timeseries", "short",
     [(f'deriv(anneal_schedule_max_step_served{{{S}}}[{R}])',
       "{{schedule}}")], 8),
    ("Schedule $schedule", "Cycle (warm restarts)", "timeseries", "short",
     [(f'anneal_schedule_cycle{{{S}}}', "{{schedule}}")], 8),
    ("Schedule $schedule", "Seconds since the highest step rose", "stat", "s",
     [(f'time() - anneal_schedule_last_progress_timestamp_seconds{{{S}}}',
       "{{schedule}}")], 8),
]

ANNOTATIONS = [
    ("Warm restarts", "orange",
     f'changes(anneal_schedule_cycle{{{S}}}[1m]) > 0'),
    ("Schedule changes", "blue",
     f'changes(anneal_schedule_revision{{{S}}}[1m]) > 0'),
]

VARIABLES = [
    ("instance", "label_values(anneal_build_info, instance)"),
    # max_step_served exists for every schedule under the cap, served or
    # not (anneal_schedule_lr only once a step is served).
    ("schedule", 'label_values(anneal_schedule_max_step_served{'
                 'instance=~"$instance"}, schedule)'),
    ("metric", 'label_values(anneal_schedule_reported{instance=~"$instance"},'
               " metric)"),
]

DATASOURCE = {"type": "prometheus", "uid": "${datasource}"}


def panel(pid, title, kind, unit, queries, x, y, w):
    p = {
        "id": pid, "title": title, "type": kind, "datasource": DATASOURCE,
        "gridPos": {"x": x, "y": y, "w": w, "h": 8},
        "fieldConfig": {"defaults": {"unit": unit}, "overrides": []},
        "targets": [{"refId": chr(ord("A") + i), "expr": e, "legendFormat": l,
                     "datasource": DATASOURCE}
                    for i, (e, l) in enumerate(queries)],
    }
    if kind == "xychart":
        p["options"] = {"dims": {"x": "step"}, "seriesMapping": "auto"}
        p["transformations"] = [{"id": "joinByField", "options": {}}]
    if title.startswith("LR over time"):
        # Reported metrics (loss) on their own axis beside the LR.
        p["fieldConfig"]["overrides"] = [{
            "matcher": {"id": "byRegexp", "options": "^(?!lr ).*"},
            "properties": [{"id": "custom.axisPlacement", "value": "right"}],
        }]
    return p


def dashboard():
    panels, pid, y, row, x = [], 1, 0, None, 0
    for r, title, kind, unit, queries, w in PANELS:
        if r != row:
            if x:
                y += 8
            panels.append({"id": pid, "type": "row", "title": r,
                           "collapsed": False,
                           "gridPos": {"x": 0, "y": y, "w": 24, "h": 1}})
            pid, y, x, row = pid + 1, y + 1, 0, r
        if x + w > 24:
            x, y = 0, y + 8
        panels.append(panel(pid, title, kind, unit, queries, x, y, w))
        pid, x = pid + 1, x + w
    templating = [{"name": "datasource", "type": "datasource",
                   "query": "prometheus", "label": "Prometheus"}]
    for name, query in VARIABLES:
        templating.append({
            "name": name, "type": "query", "datasource": DATASOURCE,
            "query": {"query": query, "refId": name}, "refresh": 2,
            "includeAll": True, "multi": name != "schedule",
            "current": {"text": "All", "value": "$__all"}})
    annotations = [{"name": n, "iconColor": c, "enable": True,
                    "datasource": DATASOURCE, "expr": e, "step": "15s",
                    "titleFormat": n, "textFormat": "{{schedule}}"}
                   for n, c, e in ANNOTATIONS]
    return {
        "title": "anneal", "uid": "anneal", "schemaVersion": 37,
        "tags": ["anneal"], "timezone": "", "refresh": "30s",
        "time": {"from": "now-6h", "to": "now"},
        "templating": {"list": templating},
        "annotations": {"list": annotations}, "panels": panels,
    }


def main():
    text = json.dumps(dashboard(), indent=2) + "\n"
    if "--check" in sys.argv:
        if not OUT.exists() or OUT.read_text() != text:
            print(f"{OUT} is stale: run scripts/gen-grafana-dashboard.py")
            return 1
        print("gen-grafana-dashboard: up to date")
        return 0
    OUT.write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
