"""Bearer tokens and roles on a real server (docs/security.md).

Every RPC x every role x {no token, a bad token, a token removed from the
tokens file and reloaded with SIGHUP}; label-scoped tokens; the actor
recorded; the refusal to serve a non-loopback address without tokens.
"""

from __future__ import annotations

import hashlib
import pathlib
import signal
import subprocess
import time

import grpc
import pytest

from conftest import BUILD_DIR, ServerProcess

from anneal.v1 import resources_pb2, schedule_pb2, service_pb2, service_pb2_grpc

SPEC = schedule_pb2.ScheduleSpec(max_lr=0.1, constant=schedule_pb2.Constant())
TOKENS = {
    "reader": "tok-reader-1f3a",
    "trainer": "tok-trainer-77b2",
    "operator": "tok-operator-c0de",
    "admin": "tok-admin-9e9e",
    "vision": "tok-vision-4242",
    "gone-reader": "tok-gone-r",
    "gone-trainer": "tok-gone-t",
    "gone-operator": "tok-gone-o",
}
ROLE = {"reader": "reader", "trainer": "trainer", "operator": "operator",
        "admin": "operator", "vision": "operator", "gone-reader": "reader",
        "gone-trainer": "trainer", "gone-operator": "operator"}
LEVEL = {"reader": 0, "trainer": 1, "operator": 2}


def tokens_text(names) -> str:
    lines = ["# name role sha256 [selector]"]
    for n in names:
        digest = hashlib.sha256(TOKENS[n].encode()).hexdigest()
        selector = " team=vision" if n == "vision" else ""
        lines.append("%s %s %s%s" % (n, ROLE[n], digest, selector))
    return "\n".join(lines) + "\n"


def md(token):
    return None if token is None else (("authorization", "Bearer " + token),)


def reloads(server: ServerProcess) -> int:
    return server.log_path.read_text().count("reload: ")


def sighup_and_wait(server: ServerProcess) -> None:
    """SIGHUP, then waits for the server's reload line (no time limit but
    the test's own)."""
    before = reloads(server)
    server.proc.send_signal(signal.SIGHUP)
    while reloads(server) == before:
        time.sleep(0.01)


@pytest.fixture(scope="module")
def secured(tmp_path_factory):
    work = tmp_path_factory.mktemp("secured")
    tokens = work / "tokens"
    tokens.write_text(tokens_text(TOKENS))
    server = ServerProcess(work, extra=["--tokens_file=%s" % tokens])
    server.start()
    channel = grpc.insecure_channel(server.address)
    stub = service_pb2_grpc.ScheduleServiceStub(channel)
    # The removed tokens work before the reload ...
    for n in ("gone-reader", "gone-trainer", "gone-operator"):
        stub.ListSchedules(service_pb2.ListSchedulesRequest(),
                           metadata=md(TOKENS[n]), timeout=10)
    tokens.write_text(tokens_text(
        [n for n in TOKENS if not n.startswith("gone-")]))
    sighup_and_wait(server)
    try:
        yield server, stub
    finally:
        channel.close()
        assert server.stop() == 0, server.log_path.read_text()


def _name(sid: str) -> str:
    return "schedules/" + sid


# Each RPC: (role it needs, request for the schedule `name`).
RPCS = {
    "CreateSchedule": ("operator", lambda n: service_pb2.CreateScheduleRequest(
        schedule_id=n.split("/")[1] + "-new",
        schedule=resources_pb2.Schedule(spec=SPEC))),
    "GetSchedule": ("reader", lambda n: service_pb2.GetScheduleRequest(name=n)),
    "ListSchedules": ("reader", lambda n: service_pb2.ListSchedulesRequest()),
    "UpdateSchedule": ("operator", lambda n: service_pb2.UpdateScheduleRequest(
        schedule=resources_pb2.Schedule(name=n, display_name="renamed"),
        update_mask={"paths": ["display_name"]})),
    "DeleteSchedule": ("operator",
                       lambda n: service_pb2.DeleteScheduleRequest(name=n)),
    "Evaluate": ("reader", lambda n: service_pb2.EvaluateRequest(name=n, step=3)),
    "EvaluateRange": ("reader", lambda n: service_pb2.EvaluateRangeRequest(
        name=n, start_step=0, count=4)),
    "Simulate": ("reader", lambda n: service_pb2.SimulateRequest(
        spec=SPEC, count=4)),
    "Advance": ("trainer", lambda n: service_pb2.AdvanceRequest(name=n)),
    "RestartSchedule": ("operator",
                        lambda n: service_pb2.RestartScheduleRequest(name=n)),
    "ReportMetrics": ("trainer", lambda n: service_pb2.ReportMetricsRequest(
        name=n, step=1, metrics={"loss": 0.5})),
    "ListMetricReports": ("reader",
                          lambda n: service_pb2.ListMetricReportsRequest(name=n)),
    "Diagnose": ("reader", lambda n: service_pb2.DiagnoseRequest(name=n)),
    "WatchSchedules": ("reader",
                       lambda n: service_pb2.WatchSchedulesRequest(names=[n])),
}
CALLERS = ["none", "bad", "gone-reader", "gone-trainer", "gone-operator",
           "reader", "trainer", "operator"]


def call(stub, rpc: str, request, token):
    """The call's status code and message (a watch: its first event)."""
    try:
        if rpc == "WatchSchedules":
            stream = stub.WatchSchedules(request, metadata=md(token), timeout=10)
            try:
                next(stream)
            finally:
                stream.cancel()
        else:
            getattr(stub, rpc)(request, metadata=md(token), timeout=10)
        return grpc.StatusCode.OK, ""
    except grpc.RpcError as e:
        return e.code(), e.details()


def test_unauthenticated_refused_before_anything(secured):
    server, stub = secured
    code, message = call(stub, "ListSchedules",
                         service_pb2.ListSchedulesRequest(), None)
    assert code == grpc.StatusCode.UNAUTHENTICATED
    assert "bearer token" in message


@pytest.mark.parametrize("caller", CALLERS)
@pytest.mark.parametrize("rpc", sorted(RPCS))
def test_every_rpc_every_role(secured, rpc, caller):
    server, stub = secured
    needed, build = RPCS[rpc]
    sid = ("%s-%s" % (rpc, caller)).lower()
    stub.CreateSchedule(service_pb2.CreateScheduleRequest(
        schedule_id=sid, schedule=resources_pb2.Schedule(spec=SPEC)),
        metadata=md(TOKENS["admin"]), timeout=10)
    token = {"none": None, "bad": "not-a-token"}.get(caller, TOKENS.get(caller))
    code, message = call(stub, rpc, build(_name(sid)), token)
    if caller in ("none", "bad") or caller.startswith("gone-"):
        assert code == grpc.StatusCode.UNAUTHENTICATED, message
        if caller != "none":
            assert "not valid" in message
        return
    if LEVEL[ROLE[caller]] >= LEVEL[needed]:
        assert code == grpc.StatusCode.OK, message
    else:
        assert code == grpc.StatusCode.PERMISSION_DENIED, message
        assert "needs the %s role" % needed in message
        assert caller in message


def test_actor_is_the_token_name_and_the_callers_text_a_note(secured):
    server, stub = secured
    s = stub.CreateSchedule(service_pb2.CreateScheduleRequest(
        schedule_id="actor-test", schedule=resources_pb2.Schedule(spec=SPEC),
        actor="mallory", reason="warmup"),
        metadata=md(TOKENS["operator"]), timeout=10)
    assert s.timeline[0].actor == "operator"
    assert s.timeline[0].reason == "warmup [caller's actor: mallory]"
    stub.DeleteSchedule(service_pb2.DeleteScheduleRequest(
        name="schedules/actor-test", actor="mallory", reason="done"),
        metadata=md(TOKENS["operator"]), timeout=10)
    log = server.log_path.read_text()
    assert ('delete schedules/actor-test by "operator" '
            'reason "done [caller\'s actor: mallory]"') in log, log
    for secret in TOKENS.values():
        assert secret not in log
        assert hashlib.sha256(secret.encode()).hexdigest() not in log


def test_label_scoped_token(secured):
    server, stub = secured
    admin, vision = md(TOKENS["admin"]), md(TOKENS["vision"])
    for sid, team in (("scope-mine", "vision"), ("scope-theirs", "nlp")):
        stub.CreateSchedule(service_pb2.CreateScheduleRequest(
            schedule_id=sid, schedule=resources_pb2.Schedule(
                spec=SPEC, labels={"team": team})), metadata=admin, timeout=10)
    listed = stub.ListSchedules(service_pb2.ListSchedulesRequest(
        page_size=1000), metadata=vision, timeout=10)
    names = [s.name for s in listed.schedules]
    assert "schedules/scope-mine" in names
    assert all(s.labels["team"] == "vision" for s in listed.schedules)
    stub.Evaluate(service_pb2.EvaluateRequest(name="schedules/scope-mine"),
                  metadata=vision, timeout=10)
    # Another team's schedule looks like none at all.
    for rpc in ("GetSchedule", "Evaluate", "Advance", "DeleteSchedule",
                "RestartSchedule", "UpdateSchedule", "WatchSchedules"):
        code, message = call(stub, rpc, RPCS[rpc][1]("schedules/scope-theirs"),
                             TOKENS["vision"])
        assert code == grpc.StatusCode.NOT_FOUND, (rpc, message)
        assert message == "schedules/scope-theirs: not found"
    # It may not create or relabel a schedule out of its scope.
    code, message = call(stub, "CreateSchedule",
                         service_pb2.CreateScheduleRequest(
                             schedule_id="scope-new",
                             schedule=resources_pb2.Schedule(spec=SPEC)),
                         TOKENS["vision"])
    assert code == grpc.StatusCode.PERMISSION_DENIED
    assert "team=vision" in message
    code, message = call(stub, "UpdateSchedule",
                         service_pb2.UpdateScheduleRequest(
                             schedule=resources_pb2.Schedule(
                                 name="schedules/scope-mine",
                                 labels={"team": "nlp"}),
                             update_mask={"paths": ["labels"]}),
                         TOKENS["vision"])
    assert code == grpc.StatusCode.PERMISSION_DENIED
    # A filtered watch sees only its scope.
    stream = stub.WatchSchedules(service_pb2.WatchSchedulesRequest(),
                                 metadata=vision, timeout=10)
    try:
        seen = []
        for event in stream:
            if event.schedule.name:
                seen.append(event.schedule.name)
            if event.kind == service_pb2.WatchEvent.SYNCED:
                break
    finally:
        stream.cancel()
    assert "schedules/scope-mine" in seen
    assert "schedules/scope-theirs" not in seen


def test_a_reload_ends_the_watch_streams_of_removed_tokens(tmp_path):
    """A Watch opened with a token ends UNAUTHENTICATED once a reload
    removes or changes that token, even while idle; others go on."""
    tokens = tmp_path / "tokens"
    tokens.write_text(tokens_text(["reader", "trainer", "operator"]))
    server = ServerProcess(tmp_path, extra=["--tokens_file=%s" % tokens])
    server.start()
    try:
        with grpc.insecure_channel(server.address) as channel:
            stub = service_pb2_grpc.ScheduleServiceStub(channel)
            streams = {n: stub.WatchSchedules(service_pb2.WatchSchedulesRequest(),
                                              metadata=md(TOKENS[n]), timeout=60)
                       for n in ("reader", "trainer", "operator")}
            for stream in streams.values():
                assert next(stream).kind == service_pb2.WatchEvent.SYNCED
            # reader removed, trainer's role changed, operator kept.
            lines = tokens_text(["reader", "trainer", "operator"]).splitlines()
            kept = [l for l in lines if l.startswith("operator ")]
            changed = [l.replace(" trainer ", " reader ", 1)
                       for l in lines if l.startswith("trainer ")]
            tokens.write_text("\n".join(kept + changed) + "\n")
            sighup_and_wait(server)
            for n in ("reader", "trainer"):
                with pytest.raises(grpc.RpcError) as ended:
                    next(streams[n])
                assert ended.value.code() == grpc.StatusCode.UNAUTHENTICATED
                assert "reloaded" in ended.value.details()
            # The kept token's stream still sees changes.
            stub.CreateSchedule(service_pb2.CreateScheduleRequest(
                schedule_id="after-reload",
                schedule=resources_pb2.Schedule(spec=SPEC)),
                metadata=md(TOKENS["operator"]), timeout=10)
            event = next(streams["operator"])
            assert event.kind == service_pb2.WatchEvent.CREATED
            assert event.schedule.name == "schedules/after-reload"
            streams["operator"].cancel()
    finally:
        assert server.stop() == 0, server.log_path.read_text()


def test_a_bad_reload_keeps_the_previous_tokens(tmp_path):
    tokens = tmp_path / "tokens"
    tokens.write_text(tokens_text(["reader"]))
    server = ServerProcess(tmp_path, extra=["--tokens_file=%s" % tokens])
    server.start()
    try:
        tokens.write_text("this is not a tokens file\n")
        sighup_and_wait(server)
        assert "reload: kept the previous 1 tokens" in server.log_path.read_text()
        with grpc.insecure_channel(server.address) as channel:
            stub = service_pb2_grpc.ScheduleServiceStub(channel)
            stub.ListSchedules(service_pb2.ListSchedulesRequest(),
                               metadata=md(TOKENS["reader"]), timeout=10)
    finally:
        assert server.stop() == 0


def run_server(args, tmp_path: pathlib.Path):
    return subprocess.run(
        [str(BUILD_DIR / "bin" / "anneal-server"), "--store=memory:",
         "--metrics_listen=", "--port_file=%s" % (tmp_path / "port")] + args,
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        timeout=60)


def test_no_tokens_refuses_a_non_loopback_address(tmp_path):
    done = run_server(["--listen=0.0.0.0:0"], tmp_path)
    assert done.returncode == 1
    assert "is not a loopback address and there is no --tokens_file" in done.stdout


def test_metrics_port_stays_on_loopback(tmp_path):
    done = subprocess.run(
        [str(BUILD_DIR / "bin" / "anneal-server"), "--store=memory:",
         "--listen=127.0.0.1:0", "--metrics_listen=0.0.0.0:0"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        timeout=60)
    assert done.returncode == 1
    assert "--metrics_public" in done.stdout


def test_insecure_serves_anyway_and_says_so(tmp_path):
    server = ServerProcess(tmp_path, extra=["--insecure"])
    # ServerProcess listens on 127.0.0.1; start a separate one on 0.0.0.0.
    proc = subprocess.Popen(
        [str(BUILD_DIR / "bin" / "anneal-server"), "--store=memory:",
         "--listen=0.0.0.0:0", "--insecure", "--metrics_listen=",
         "--port_file=%s" % server.port_file],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        while not (server.port_file.exists() and server.port_file.read_text()):
            assert proc.poll() is None, proc.stdout.read()
            time.sleep(0.01)
    finally:
        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=30)
    assert proc.returncode == 0
    assert "WARNING: --insecure" in out
    assert "NO AUTHENTICATION" in out


def test_python_client_sends_the_token(secured, monkeypatch):
    import anneal
    server, _ = secured
    with anneal.Client(server.address, token=TOKENS["reader"]) as c:
        assert isinstance(list(c.list()), list)
        with pytest.raises(anneal.errors.AnnealError) as e:
            c.create("py-denied", {"max_lr": 0.1, "constant": {}})
        assert "needs the operator role" in str(e.value)
    monkeypatch.setenv("ANNEAL_TOKEN", TOKENS["operator"])
    with anneal.Client(server.address) as c:
        s = c.create("py-env", {"max_lr": 0.1, "constant": {}})
        assert s.timeline[0].actor == "operator"
    monkeypatch.delenv("ANNEAL_TOKEN")
    with anneal.Client(server.address) as c:
        with pytest.raises(anneal.errors.AnnealError) as e:
            list(c.list())
        assert "bearer token" in str(e.value)


def test_annealctl_token_flag_env_and_file(secured, tmp_path):
    server, _ = secured
    ctl = str(BUILD_DIR / "bin" / "annealctl")
    env = {"PATH": "/usr/bin:/bin", "ANNEAL_SERVER": server.address}

    def run(*args, **extra):
        return subprocess.run([ctl] + list(args), env=dict(env, **extra),
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True, timeout=60)

    denied = run("list")
    assert denied.returncode == 1 and "bearer token" in denied.stderr
    assert run("list", "--token", TOKENS["reader"]).returncode == 0
    assert run("--token=" + TOKENS["reader"], "list").returncode == 0
    assert run("list", ANNEAL_TOKEN=TOKENS["reader"]).returncode == 0
    token_file = tmp_path / "token"
    token_file.write_text(TOKENS["reader"] + "\n")
    assert run("list", "--token_file", str(token_file)).returncode == 0
    wrong = run("restart", "actor-test", "--token", TOKENS["reader"])
    assert wrong.returncode == 1
    assert "needs the operator role" in wrong.stderr


def test_mutation_rate_limit_per_client(tmp_path):
    import anneal
    tokens = tmp_path / "tokens"
    tokens.write_text(tokens_text(["operator", "admin"]))
    # One change back per 1000 s: after the burst of 2, the third waits.
    server = ServerProcess(tmp_path, extra=[
        "--tokens_file=%s" % tokens, "--mutation_rate=0.001",
        "--mutation_burst=2"])
    server.start()
    try:
        with anneal.Client(server.address, token=TOKENS["operator"]) as c:
            c.create("rl-1", {"max_lr": 0.1, "constant": {}})
            c.restart("rl-1")
            with pytest.raises(anneal.errors.ResourceExhaustedError) as e:
                c.delete("rl-1")
            assert e.value.retry_delay is not None and e.value.retry_delay > 1
            assert "operator is over its limit" in str(e.value)
            # Reads are not limited.
            assert c.get("rl-1").name == "schedules/rl-1"
        # Another token has its own bucket.
        with anneal.Client(server.address, token=TOKENS["admin"]) as c:
            c.delete("rl-1")
    finally:
        assert server.stop() == 0, server.log_path.read_text()
