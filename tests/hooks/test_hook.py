"""EnOSHook against the emulator over loopback (every method, tokens, errors) and scripted replies."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from airflow_enos_provider._protocol.tokens import TOKENS
from airflow_enos_provider.exceptions import (
    EnOSAPIError,
    EnOSAuthenticationError,
    EnOSConnectionError,
    EnOSValidationError,
)
from airflow_enos_provider.hooks.enos import EnOSHook
from airflow_enos_provider.status import EnOSFlowInstanceStatus as S
from tests import enos_env as env
from tests._protocol.test_protocol import batch_reply, lost, scripted_hook


def test_get_server_time_is_the_emulator_clock(hook, emulator):
    assert hook.get_server_time() == emulator.state.now_ms()


def test_get_flow_instance(hook):
    instance = hook.get_flow_instance(env.RUNNING_ID)
    assert instance["instanceId"] == env.RUNNING_ID
    assert instance["flowId"] == env.FLOW_ID
    assert instance["status"] == S.RUNNING


def test_cancel_flow_instance_sends_one_signed_call_with_identity(hook, emulator):
    hook.cancel_flow_instance(env.RUNNING_ID)
    assert emulator.state.instance_status(env.RUNNING_ID) == S.CANCEL
    (call,) = [r for r in emulator.state.requests if r.operation == "flowInstances.cancel"]
    assert call.method == "POST"
    assert call.query == {"action": "cancel", "userId": env.USER_ID, "orgId": env.ORG_ID}
    assert call.body == {"flowInstId": env.RUNNING_ID}


def test_operation_arguments_override_the_connection_identity(hook, emulator):
    with pytest.raises(EnOSAPIError) as caught:
        hook.cancel_flow_instance(env.RUNNING_ID, user_id=env.OTHER_USER_ID)
    assert caught.value.code == 62103
    assert emulator.state.instance_status(env.RUNNING_ID) == S.RUNNING


def test_trigger_flow_and_follow_the_instance(hook, emulator):
    instance_id = hook.trigger_flow(env.IDLE_FLOW_ID).flow_inst_id
    assert instance_id.startswith(f"{env.IDLE_FLOW_ID}-")
    assert hook.get_flow_instance(instance_id)["status"] == S.INIT
    emulator.state.advance(2)
    assert hook.get_flow_instance(instance_id)["status"] == S.RUNNING
    emulator.state.advance(3600)
    assert hook.get_flow_instance(instance_id)["status"] == S.SUCCESS


def test_trigger_flow_accepts_digit_string_and_sends_an_integer(hook, emulator):
    hook.trigger_flow(str(env.IDLE_FLOW_ID), trigger_time=1_700_000_000_000)
    (call,) = [r for r in emulator.state.requests if r.operation == "flows.trigger"]
    assert call.body == {"flowId": env.IDLE_FLOW_ID, "triggerTime": 1_700_000_000_000}


def test_get_flow(hook):
    flow = hook.get_flow(env.LOCKED_FLOW_ID)
    assert flow["flowId"] == env.LOCKED_FLOW_ID and flow["locked"] is True


def test_list_flow_instances_follows_every_page(hook, emulator):
    for minute in range(250):
        emulator.state.add_instance(f"{env.FLOW_ID}-2020010100{minute:03d}", env.FLOW_ID, status="WAIT")
    found = hook.list_flow_instances(status=S.WAIT, page_size=100, type=0)
    assert len(found) == 250 and len({i["instanceId"] for i in found}) == 250
    pages = [
        r.body["pagination"]["pageNo"]
        for r in emulator.state.requests
        if r.operation == "flowInstances.search"
    ]
    assert pages == [1, 2, 3]


def test_list_flow_instances_status_as_codes_names_and_members(hook, emulator):
    found = hook.list_flow_instances(status=[S.RUNNING, "SUCCESS", 2])
    assert {i["instanceId"] for i in found} == {env.RUNNING_ID, env.SUCCEEDED_ID, env.LOCKED_FLOW_INSTANCE_ID}
    calls = [r for r in emulator.state.requests if r.operation == "flowInstances.search"]
    assert [call.body["status"] for call in calls] == ["2,1"] * 3
    assert [call.body["type"] for call in calls] == [0, 1, 2]  # one series per scheduling type


def test_list_with_non_ascii_and_reserved_characters_is_signed_and_sent_intact(hook, emulator):
    odd = "描述 & = + % #"
    emulator.state.add_flow(77, name=f"flow {odd}", owner=env.USER_ID)
    emulator.state.add_instance("77-202001010000", 77, status="RUNNING")
    found = hook.list_flow_instances(expression=odd)
    assert [i["instanceId"] for i in found] == ["77-202001010000"]


def test_bad_list_arguments_fail_before_any_request(hook, emulator):
    with pytest.raises(EnOSValidationError, match="unknown filter 'flowId'"):
        hook.list_flow_instances(flowId=1)
    with pytest.raises(EnOSValidationError, match="page_size must be an integer from 1 to 1000"):
        hook.list_flow_instances(page_size=0)
    with pytest.raises(EnOSValidationError, match="status: 'DONE' is not a flow-instance status"):
        hook.list_flow_instances(status="DONE")
    with pytest.raises(EnOSValidationError, match="flow_id must be a non-negative integer"):
        hook.trigger_flow("abc")
    assert emulator.state.requests == []


def test_token_is_cached_per_gateway_and_access_key_across_hooks(enos_conn, emulator):
    for _ in range(2):
        hook = EnOSHook()
        hook.get_server_time()
        hook.get_flow_instance(env.RUNNING_ID)
        hook.close()
    assert emulator.state.count("token.get") == 1


def test_token_is_replaced_shortly_before_it_expires(hook, emulator, monkeypatch):
    now = [1000.0]
    monkeypatch.setattr(TOKENS, "clock", lambda: now[0])
    emulator.state.token_ttl = 100  # refreshed 10 s (10%) before the end
    hook.get_server_time()
    now[0] += 89
    hook.get_server_time()
    assert emulator.state.count("token.get") == 1
    now[0] += 2
    emulator.state.advance(91)
    hook.get_server_time()
    assert emulator.state.count("token.get") == 2


def test_expired_token_is_replaced_once_and_the_call_repeated(hook, emulator):
    hook.get_server_time()
    emulator.state.expire_tokens()
    hook.cancel_flow_instance(env.RUNNING_ID)
    assert emulator.state.instance_status(env.RUNNING_ID) == S.CANCEL
    assert emulator.state.count("token.get") == 2
    cancels = [r for r in emulator.state.requests if r.operation == "flowInstances.cancel"]
    assert [r.http_status for r in cancels] == [401, 200]


def test_wrong_secret_gives_a_clear_authentication_error(emulator, monkeypatch):
    monkeypatch.setenv(
        "AIRFLOW_CONN_ENOS_DEFAULT", env.connection_json(emulator.url, secret_key="not-the-secret")
    )
    with pytest.raises(EnOSAuthenticationError) as caught:
        EnOSHook().cancel_flow_instance(env.RUNNING_ID)
    text = str(caught.value)
    assert caught.value.code == 1003 and "secret key" in text and "not-the-secret" not in text
    assert emulator.state.count("flowInstances.cancel") == 0


@pytest.mark.parametrize(
    ("kwargs", "code", "hint"),
    [
        ({"org_id": "o-elsewhere"}, 62101, "check user_id and org_id"),
        ({"user_id": env.OTHER_USER_ID}, 62103, "does not own"),
        ({"user_id": env.LOCKED_USER_ID}, 62105, "locked"),
    ],
)
def test_refusals_name_the_code_and_what_to_do(hook, kwargs, code, hint):
    with pytest.raises(EnOSAPIError) as caught:
        hook.cancel_flow_instance(env.RUNNING_ID, **kwargs)
    assert caught.value.code == code and hint in str(caught.value) and env.RUNNING_ID in str(caught.value)
    assert caught.value.request_id


def test_locked_workflow_and_unknown_instance(hook):
    with pytest.raises(EnOSAPIError) as caught:
        hook.cancel_flow_instance(env.LOCKED_FLOW_INSTANCE_ID)
    assert caught.value.code == 62105
    with pytest.raises(EnOSAPIError) as caught:
        hook.get_flow_instance("2438-000000000000")
    assert caught.value.code == 62102 and "not found" in caught.value.message.lower()


def test_test_connection_reports_success_and_failure(hook, emulator, monkeypatch):
    ok, message = hook.test_connection()
    assert ok and emulator.url in message
    # The server's time as a person reads it (ISO 8601, UTC), not bare epoch milliseconds.
    from datetime import UTC, datetime

    when = datetime.fromtimestamp(emulator.state.now_ms() / 1000, UTC).isoformat(timespec="milliseconds")
    assert message.endswith(f"server time {when}"), message
    monkeypatch.setenv("AIRFLOW_CONN_BAD", env.connection_json(emulator.url, secret_key="wrong"))
    ok, message = EnOSHook("bad").test_connection()
    assert not ok and "1003" in message and "wrong" not in message


class _HtmlErrorPage(BaseHTTPRequestHandler):
    """A proxy in front of the gateway answering with its own HTML page."""

    def do_POST(self):
        body = b"<html><body><h1>502 Bad Gateway</h1><p>nginx</p></body></html>"
        self.send_response(502)
        self.send_header("Content-Type", "text/html")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


def test_non_json_reply_raises_api_error_with_status_and_excerpt(monkeypatch):
    server = ThreadingHTTPServer(("127.0.0.1", 0), _HtmlErrorPage)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}"
        monkeypatch.setenv("AIRFLOW_CONN_ENOS_DEFAULT", env.connection_json(url))
        with pytest.raises(EnOSAPIError) as caught:
            EnOSHook(retry_base_delay=0.001).get_server_time()
    finally:
        server.shutdown()
        server.server_close()
    assert caught.value.http_status == 502 and "502 Bad Gateway" in str(caught.value)


def test_unreachable_gateway_raises_connection_error(monkeypatch):
    monkeypatch.setenv("AIRFLOW_CONN_ENOS_DEFAULT", env.connection_json("http://127.0.0.1:9"))
    hook = EnOSHook(retry_base_delay=0.001)
    with pytest.raises(EnOSConnectionError, match=r"could not reach http://127\.0\.0\.1:9"):
        hook.get_server_time()
    assert hook.retry_count.value == 3  # connection refused: nothing was sent, so it is retried


def test_one_tcp_connection_for_many_calls(hook, emulator):
    for _ in range(5):
        hook.get_flow_instance(env.RUNNING_ID)
    assert emulator.state.connections_opened == 1


# ----------------------------------------------------------------- the documented contract, end to end


def test_the_kill_switch_cancels_every_active_instance_of_a_periodic_flow(hook, emulator):
    state = emulator.state
    state.add_flow(3001, name="nightly", owner=env.USER_ID, tasks=["run"], type=1)  # periodic
    old = state.add_instance("3001-201001010000", 3001, status="WAIT", trigger_time_ms=1_262_304_000_000)
    running = [state.add_instance(f"3001-2026010100{m:02d}", 3001, status="RUNNING") for m in range(5)]
    done = state.add_instance("3001-202512310000", 3001, status="SUCCESS")
    found = {i["instanceId"] for i in hook.find_flow_instances(flow_id=3001)}
    assert found == {old, *running}  # triggered in 2010 and still waiting: found too
    searches = [r.body for r in state.requests if r.operation == "flowInstances.search"]
    assert [s["type"] for s in searches] == [1]  # the flow's own type, from one Get Flow
    assert state.count("flows.get") == 1
    outcomes = hook.cancel_flow_instances(sorted(found))
    assert {o["outcome"] for o in outcomes.values()} == {"cancelled"}
    assert {state.instance_status(i) for i in found} == {S.CANCEL}
    assert state.instance_status(done) == S.SUCCESS


def test_a_users_mapping_reaches_enos_as_the_documented_list(hook, emulator):
    instance_id = hook.trigger_flow(env.IDLE_FLOW_ID, parameters={"A": "1", "DRY_RUN": True}).flow_inst_id
    (call,) = [r for r in emulator.state.requests if r.operation == "flows.updateAndTrigger"]
    assert call.body["parameters"] == [{"key": "A", "value": "1"}, {"key": "DRY_RUN", "value": "true"}]
    stored = json.loads(hook.get_flow_instance(instance_id)["parameters"])
    assert stored == call.body["parameters"]


def test_a_second_trigger_while_one_runs_is_queued_and_runs_after_it(hook, emulator):
    state = emulator.state
    first = hook.trigger_flow(env.IDLE_FLOW_ID, trigger_time=1_700_000_000_000).flow_inst_id
    state.advance(2)
    second = hook.trigger_flow(env.IDLE_FLOW_ID, trigger_time=1_700_000_060_000).flow_inst_id
    assert hook.get_flow_instance(first)["status"] == S.RUNNING
    assert hook.get_flow_instance(second)["status"] == S.WAIT
    state.advance(3600)  # the first ends; the second starts, then ends
    assert hook.get_flow_instance(first)["status"] == S.SUCCESS
    assert hook.get_flow_instance(second)["status"] == S.SUCCESS


def test_task_instances_and_their_logs_are_read_from_the_graph(hook, emulator):
    from airflow_enos_provider._status import task_records

    tasks = task_records(hook.get_flow_instance(env.RUNNING_ID))
    assert [t.name for t in tasks] == ["extract", "load"]
    load = tasks[1]
    assert load.task_inst_id is not None and load.task_inst_id.endswith(env.RUNNING_ID.split("-", 1)[1])
    emulator.state.set_task_log(load.task_inst_id, "line 1\nline 2\nERROR: disk full\n")
    assert hook.get_task_instance_log(load.task_inst_id).endswith("ERROR: disk full\n")
    assert hook.get_task_instance_log(load.task_inst_id, max_length=17) == "ERROR: disk full\n"
    record = hook.get_task_instance(load.task_inst_id)
    assert record["flowInstId"] == env.RUNNING_ID
    with pytest.raises(EnOSAPIError, match="check the task-instance id"):
        hook.get_task_instance_log("999999-201908081020")


def test_the_kill_switch_misses_none_while_cancels_shift_the_pages(hook, emulator):
    # Cancels start while later pages are read, so an active-only search loses instances ahead of its
    # offset; the searches repeat until one finds nothing new.
    state = emulator.state
    state.add_flow(3002, name="every_minute", owner=env.USER_ID, tasks=["run"], type=1)
    ids = [
        state.add_instance(f"3002-2026010{d}{m:04d}", 3002, status="RUNNING")
        for d in (1, 2)
        for m in range(125)
    ]
    outcomes = hook.cancel_flow_instances(flow_id=3002, max_concurrency=16)
    assert set(outcomes) == set(ids)
    assert {o["outcome"] for o in outcomes.values()} == {"cancelled"}
    assert {state.instance_status(i) for i in ids} == {S.CANCEL}
    searches = [r for r in state.requests if r.operation == "flowInstances.search"]
    assert len(searches) >= 3 and state.count("flows.get") == 1  # pages, then a search that found none


# ----------------------------------------------------------------- what a new user tripped on


def test_test_connection_fails_without_the_batch_extras_after_checking_credentials(emulator, monkeypatch):
    monkeypatch.setenv("AIRFLOW_CONN_NO_ORG", env.connection_json(emulator.url, org_id=None))
    ok, message = EnOSHook("no_org").test_connection()
    assert not ok and "no org_id extra" in message and "user_id" not in message
    assert emulator.state.count("token.get") >= 1  # the credentials were checked first
    monkeypatch.setenv("AIRFLOW_CONN_NEITHER", env.connection_json(emulator.url, org_id=None, user_id=None))
    ok, message = EnOSHook("neither").test_connection()
    assert not ok and "no org_id and no user_id extra" in message
    monkeypatch.setenv(
        "AIRFLOW_CONN_BAD_NO_ORG", env.connection_json(emulator.url, secret_key="wrong", org_id=None)
    )
    ok, message = EnOSHook("bad_no_org").test_connection()
    assert not ok and "1003" in message  # a wrong secret is named before the missing extra


def test_an_https_host_against_plain_http_says_so_and_keeps_the_ssl_reason(emulator, monkeypatch):
    host = emulator.url.removeprefix("http://")  # no scheme: https is assumed
    monkeypatch.setenv("AIRFLOW_CONN_NO_SCHEME", env.connection_json(host))
    with pytest.raises(EnOSConnectionError) as caught:
        EnOSHook("no_scheme").get_server_time()
    message = str(caught.value)
    assert "answered plain HTTP to an HTTPS request" in message and "put http://" in message
    assert "[SSL: WRONG_VERSION_NUMBER]" in message or "record layer failure" in message
    assert "CA bundle" not in message
    assert message.count("(") == message.count(")"), message


def _with_schema(url: str, schema: str) -> str:
    document = json.loads(env.connection_json(url))
    return json.dumps({**document, "schema": schema})


def test_the_connections_schema_is_honoured_as_the_scheme_or_refused(emulator, monkeypatch):
    host = emulator.url.removeprefix("http://")
    # "http" in the (hidden) schema field serves a scheme-less host over plain HTTP, e.g. the emulator.
    monkeypatch.setenv("AIRFLOW_CONN_PLAIN", _with_schema(host, "http"))
    assert EnOSHook("plain").settings.gateway_url == emulator.url
    assert EnOSHook("plain").get_server_time() == emulator.state.now_ms()
    monkeypatch.setenv("AIRFLOW_CONN_ODD", _with_schema(host, "ftp"))
    with pytest.raises(
        EnOSValidationError, match="connection 'odd': schema must be empty, 'http' or 'https'"
    ):
        EnOSHook("odd").settings  # noqa: B018 - reading the connection is what fails
    monkeypatch.setenv("AIRFLOW_CONN_CLASH", _with_schema(emulator.url, "https"))
    with pytest.raises(EnOSValidationError, match="schema 'https' contradicts the scheme of host"):
        EnOSHook("clash").settings  # noqa: B018
    assert emulator.state.count("time.getCurrentTime") == 1


def test_async_https_host_against_plain_http_says_so_too(emulator, monkeypatch):
    host = emulator.url.removeprefix("http://")
    monkeypatch.setenv("AIRFLOW_CONN_NO_SCHEME", env.connection_json(host))
    with pytest.raises(EnOSConnectionError, match="answered plain HTTP to an HTTPS request"):
        env.run_async(EnOSHook("no_scheme").aget_flow_instance(env.RUNNING_ID))


def test_a_host_with_a_path_names_the_url_and_the_gateway_root(emulator, monkeypatch):
    monkeypatch.setenv("AIRFLOW_CONN_WITH_PATH", env.connection_json(emulator.url + "/gateway/v1"))
    with pytest.raises(EnOSAPIError) as caught:
        EnOSHook("with_path", retries=0).get_server_time()
    message = str(caught.value)
    assert f"Nothing answers at {emulator.url}/gateway/v1/apim-token-service/v2.0/token/get" in message
    assert "must be the gateway root" in message


def test_retry_lines_name_the_instance_only_when_there_is_one(hook, emulator, capfd):
    emulator.state.inject("http_5xx", "token.get", status=503, times=1)
    emulator.state.inject("http_5xx", "flowInstances.get", status=503, times=1)
    capfd.readouterr()
    hook.get_flow_instance(env.RUNNING_ID)
    out, err = capfd.readouterr()
    lines = [line for line in (out + err).splitlines() if "retrying in" in line]
    assert any("EnOS get_access_token failed on attempt 1" in line for line in lines), lines
    assert any(f"get_flow_instance of flow instance {env.RUNNING_ID} failed" in line for line in lines)
    assert not any("of flow instance -" in line for line in lines)


def test_test_connection_asks_for_one_new_token_and_keeps_it(hook, emulator):
    hook.get_server_time()  # a cached token, which Test does not trust
    before = emulator.state.count("token.get")
    ok, _ = hook.test_connection()
    assert ok and emulator.state.count("token.get") == before + 1
    hook.get_server_time()
    assert emulator.state.count("token.get") == before + 1  # the new token was kept


# ----------------------------------------------------------------- procedures, against scripted replies


def test_a_trigger_whose_reply_was_lost_is_found_instead_of_repeated(monkeypatch):
    mine = {"instanceId": "2440-202311142213", "flowId": 2440, "triggerTime": "2023-11-14 22:13:20"}
    other = {**mine, "instanceId": "2440-20231114221320", "hasEditPri": False}  # another user's, same time
    found = {"count": 2, "flowInsts": [mine, other]}
    zone = batch_reply({"timezone": "GMT+0"})
    replies = [lost(), zone, batch_reply({"flowId": 2440, "type": 1}), batch_reply(found)]
    hook, script, slept = scripted_hook(monkeypatch, replies)
    started = hook.trigger_flow(2440, trigger_time=1_700_000_000_000)
    assert (started.flow_inst_id, started.trigger_ms) == ("2440-202311142213", 1_700_000_000_000)
    assert script.names() == ["trigger_flow", "get_time_zone", "get_flow", "list_flow_instances"]
    search = json.loads(script.sent[3].body or b"")
    assert (search["fromTriggerTime"], search["toTriggerTime"]) == (1_700_000_000_000, 1_700_000_000_999)
    assert search["type"] == 1  # the flow's own scheduling type, from Get Flow
    assert slept == []


def test_a_trigger_whose_reply_was_lost_is_repeated_when_enos_shows_no_instance(monkeypatch):
    nothing = batch_reply({"count": 0, "flowInsts": []})
    zone = batch_reply({"timezone": "GMT+8"})
    replies = [lost(), zone, batch_reply({"type": 0}), nothing, batch_reply({"flowInstanceId": "2440-2"})]
    hook, script, slept = scripted_hook(monkeypatch, replies)
    assert hook.trigger_flow(2440, trigger_time=1_700_000_000_000).flow_inst_id == "2440-2"
    assert script.names() == [
        "trigger_flow",
        "get_time_zone",
        "get_flow",
        "list_flow_instances",
        "trigger_flow",
    ]
    assert len(slept) == 1
    assert hook.retry_count.value == 1


def test_a_refused_cancel_of_a_finished_instance_is_already_final(monkeypatch):
    instance = {"instanceId": "2438-1", "status": 1}
    hook, script, _ = scripted_hook(monkeypatch, [batch_reply(code=62102), batch_reply(instance)])
    outcome = hook.ensure_flow_instance_stopped("2438-1")
    assert outcome == {"flow_inst_id": "2438-1", "outcome": "already_final", "status": "SUCCESS"}
    assert script.names() == ["cancel_flow_instance", "get_flow_instance"]


def test_the_tenants_zone_is_read_once_per_hook(hook, emulator):
    first = hook.get_time_zone()
    assert hook.get_time_zone() is first and first.utcoffset(None).total_seconds() == 0
    assert emulator.state.count("time.getTimeZone") == 1
