"""The emulator for a pip user: the command line, the demo seed it ships, the read-only inspection views."""

from __future__ import annotations

import json
import select
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
import requests

from airflow_enos_provider._protocol.signing import token_encryption
from airflow_enos_provider.emulator import routes
from airflow_enos_provider.emulator import seed as seeds
from airflow_enos_provider.emulator.__main__ import build_parser
from airflow_enos_provider.emulator.seed import DEMO_SEED, demo_seed
from tests import enos_env as env
from tests.airflow_cli import python_module
from tests.conftest import ROOT

CLI = "airflow_enos_provider.emulator"
TOKEN_PATH = "/apim-token-service/v2.0/token/get"
# Every TypedDict of the seed document: the schema --help and docs/emulator.rst must describe.
SEED_TYPES = [kind for name, kind in vars(seeds).items() if name.startswith("Seed")]


@contextmanager
def serving(*args: str) -> Iterator[tuple[subprocess.Popen[str], str]]:
    """Run the emulator's command line; yield the process and the URL it printed; kill it afterwards."""
    proc = subprocess.Popen(
        [sys.executable, "-m", CLI, "--port", "0", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        # Bounded wait for the URL line, so a hung CLI fails the test instead of blocking it.
        ready, _, _ = select.select([proc.stdout], [], [], 10)
        url = proc.stdout.readline().strip() if ready else ""
        if not url.startswith("http://127.0.0.1:"):
            proc.kill()
            pytest.fail(f"no URL line from the CLI ({url!r}): {proc.communicate(timeout=10)[1]}")
        yield proc, url
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def stop(proc: subprocess.Popen[str]) -> tuple[str, str]:
    """SIGTERM the command line, check it exits 0, and return what else it printed (stdout, stderr)."""
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=10)
    assert proc.returncode == 0, err
    return out, err


def token_reply(url: str, app: dict[str, str]) -> dict[str, object]:
    ts = int(time.time() * 1000)
    encryption = token_encryption(app["access_key"], ts, app["secret_key"])
    body = {"appKey": app["access_key"], "timestamp": ts, "encryption": encryption}
    return requests.post(url + TOKEN_PATH, json=body, timeout=10).json()


def test_cli_prints_url_serves_and_exits_cleanly(tmp_path):
    seed_file = tmp_path / "seed.json"
    seed_file.write_text(json.dumps(env.SEED), encoding="utf-8")
    with serving("--seed", str(seed_file), "--token-ttl", "60") as (proc, url):
        envelope = token_reply(url, {"access_key": env.ACCESS_KEY, "secret_key": env.SECRET_KEY})
        assert envelope["status"] == 0
        assert envelope["data"]["expire"] == 60  # type: ignore[index]
        out, err = stop(proc)
    assert out == ""  # exactly one line was printed
    assert err == ""  # a seed was given: nothing to say


def test_without_a_seed_it_serves_the_packaged_demo_and_says_so():
    assert DEMO_SEED.parent == ROOT / "airflow_enos_provider" / "emulator"  # package data, in the wheel
    demo = demo_seed()
    with serving() as (proc, url):
        assert token_reply(url, demo["apps"][0])["status"] == 0
        listed = requests.get(url + "/_emulator/instances", timeout=10).json()["instances"]
        out, err = stop(proc)
    assert [view["instance_id"] for view in listed] == [i["instance_id"] for i in demo["instances"]]
    assert out == ""
    assert err.splitlines() == [f"enos emulator: no --seed given, serving the demo tenant from {DEMO_SEED}"]


def test_help_and_the_docs_name_every_seed_field():
    helptext = build_parser().format_help()
    page = (ROOT / "docs" / "emulator.rst").read_text(encoding="utf-8")
    fields = {name for kind in SEED_TYPES for name in kind.__annotations__}
    assert {"apps", "flow_id", "init_seconds", "trigger_time", "cancel_final", "error"} <= fields
    assert [f for f in sorted(fields) if f not in helptext] == []
    assert [f for f in sorted(fields) if f"``{f}``" not in page] == []
    assert str(DEMO_SEED) in helptext


def test_inspection_shows_instances_and_their_history_over_http(emulator, hook):
    instance_id = hook.trigger_flow(env.IDLE_FLOW_ID).flow_inst_id
    emulator.state.advance(5)
    hook.cancel_flow_instance(instance_id)
    recorded = emulator.state.requests
    base = emulator.url + "/_emulator/instances"

    listed = requests.get(base, timeout=10).json()
    assert listed["now_ms"] == emulator.state.now_ms()
    views = {view["instance_id"]: view for view in listed["instances"]}
    assert list(views) == emulator.state.instance_ids()
    view = views[instance_id]
    assert (view["flow_id"], view["flow_name"], view["status"], view["status_code"]) == (
        env.IDLE_FLOW_ID,
        "hourly_export",
        "CANCEL",
        8,
    )
    assert [(step["status"], step["time_ms"]) for step in view["history"]] == [
        (name, int(when * 1000)) for when, name in emulator.state.status_history(instance_id)
    ]
    assert [step["status"] for step in view["history"]] == ["INIT", "RUNNING", "CANCEL"]
    one = requests.get(f"{base}/{instance_id}", timeout=10)
    assert one.status_code == 200 and one.json()["instance"] == view
    missing = requests.get(f"{base}/2438-209901010000", timeout=10)
    assert missing.status_code == 404 and "2438-209901010000" in missing.json()["message"]
    assert emulator.state.requests == recorded  # looking is not EnOS traffic


def test_inspection_is_read_only_unrecorded_and_apart_from_enos_paths(emulator):
    before = emulator.state.instance_ids()
    for method in ("POST", "PUT", "DELETE", "PATCH"):
        reply = requests.request(method, f"{emulator.url}/_emulator/instances/{env.RUNNING_ID}", timeout=10)
        assert reply.status_code == 405 and "read-only" in reply.json()["message"]
    assert requests.get(emulator.url + "/_emulator/nothing", timeout=10).status_code == 404
    assert emulator.state.instance_ids() == before
    assert emulator.state.instance_status(env.RUNNING_ID) == 2  # still RUNNING
    assert emulator.state.requests == []  # not EnOS traffic
    # A fault waits for EnOS calls; inspection neither takes it nor fails.
    emulator.state.inject("http_5xx", "*", status=503)
    assert requests.get(emulator.url + "/_emulator/instances", timeout=10).status_code == 200
    assert all(not route.prefix.startswith("/_") for route in routes.ROUTES)


def test_the_instances_subcommand_prints_each_instance(emulator):
    emulator.state.set_instance_status(env.RUNNING_ID, "FAIL")
    done = python_module(CLI, "instances", emulator.url)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert len(lines) == len(emulator.state.instance_ids())
    (failed,) = [line for line in lines if line.startswith(env.RUNNING_ID)]
    assert failed.startswith(f"{env.RUNNING_ID}  flow {env.FLOW_ID}  FAIL  (RUNNING ")
    assert " -> FAIL " in failed
    as_json = python_module(CLI, "instances", emulator.url, "--json")
    served = requests.get(emulator.url + "/_emulator/instances", timeout=10).json()
    assert json.loads(as_json.stdout) == served


def test_the_instances_subcommand_names_what_it_could_not_read(emulator):
    url = emulator.url
    emulator.stop()
    done = python_module(CLI, "instances", url)
    assert done.returncode == 2
    assert done.stderr.startswith(f"enos emulator: cannot read {url}/_emulator/instances:")
    assert len(done.stderr.splitlines()) == 1


def test_the_documented_emulator_connection_is_the_demo_tenant():
    from tests.test_docs import documented_connection_variables

    demo = demo_seed()
    app, user = demo["apps"][0], demo["users"][0]
    documented = [json.loads(v) for _, v in documented_connection_variables() if "127.0.0.1:8080" in v]
    assert len(documented) >= 1  # docs/emulator.rst (the README links there)
    for conn in documented:
        assert (conn["login"], conn["password"]) == (app["access_key"], app["secret_key"])
        assert conn["extra"] == {"org_id": user["org_id"], "user_id": user["user_id"]}


def test_the_requests_view_shows_what_a_client_sent_without_secrets(emulator, hook):
    instance_id = hook.trigger_flow(
        env.IDLE_FLOW_ID, trigger_time=1767225600000, parameters={"day": "2026-01-01"}
    ).flow_inst_id
    hook.get_flow_instance(instance_id)
    served = requests.get(emulator.url + "/_emulator/requests", timeout=10)
    assert served.status_code == 200
    views = served.json()["requests"]
    assert [(v["index"], v["method"], v["operation"]) for v in views] == [
        (1, "POST", "token.get"),
        (2, "POST", "flows.updateAndTrigger"),
        (3, "GET", "flowInstances.get"),
    ]
    token, trigger, read = views
    assert token["body"]["encryption"] == "***" and token["body"]["appKey"] == env.ACCESS_KEY
    assert trigger["path"].endswith("/flows") and trigger["action"] == "updateAndTrigger"
    assert trigger["query"]["action"] == "updateAndTrigger" and trigger["query"]["userId"] == env.USER_ID
    assert trigger["body"]["triggerTime"] == 1767225600000
    assert trigger["body"]["parameters"] == [{"key": "day", "value": "2026-01-01"}]
    assert (read["query"]["flowInstId"], read["http_status"], read["code"]) == (instance_id, 200, 0)
    text = served.text
    for secret in env.secrets_with(emulator):
        assert secret not in text
    # Reading the log is not EnOS traffic, and it is read-only.
    assert len(emulator.state.requests) == 3
    assert requests.post(emulator.url + "/_emulator/requests", timeout=10).status_code == 405


def test_the_requests_subcommand_prints_one_line_per_request(emulator, hook):
    hook.get_flow_instance(env.RUNNING_ID)
    done = python_module(CLI, "requests", emulator.url)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert len(lines) == 2
    assert lines[0].startswith("   1  POST /") and '"encryption":"***"' in lines[0]
    assert f"flowInstId={env.RUNNING_ID}" in lines[1] and lines[1].endswith("-> HTTP 200, code 0")
    as_json = python_module(CLI, "requests", emulator.url, "--json")
    assert json.loads(as_json.stdout) == requests.get(emulator.url + "/_emulator/requests", timeout=10).json()
