"""The hostile-gateway suite: scripted servers on loopback (tests/hostile_gateway.py), one class each.

Redirects, trickled and stalled replies, clamped paging, oversize and malformed envelopes and bad
tokens, against the public API with both transports. Each test asserts what the server saw (requests,
bytes sent before the client hung up), never a time; the seconds and request counts are written to
build/hostile-gateway.json for the fault matrix's bounds.
"""

from __future__ import annotations

import asyncio
import json
import logging
import threading
from datetime import UTC, datetime

import pytest

from airflow_enos_provider._protocol.tokens import TOKENS
from airflow_enos_provider._transports.aio import clients_lease
from airflow_enos_provider.exceptions import EnOSAPIError, EnOSConnectionError, EnOSError, EnOSValidationError
from airflow_enos_provider.hooks.enos import EnOSHook
from tests import enos_env as env
from tests.conftest import ROOT
from tests.hostile_gateway import (
    GOOD_TOKEN,
    TOKEN_PATH,
    Gateway,
    Reply,
    envelope,
    timed,
    token_reply,
    with_token,
)

INSTANCE = "2438-201908081020"
RESULTS = ROOT / "build" / "hostile-gateway.json"


def record(case: str, seconds: float, **figures: object) -> None:
    """Keep a case's measured bound for the closing note and the docs."""
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    data = json.loads(RESULTS.read_text()) if RESULTS.exists() else {}
    data[case] = {"seconds": round(seconds, 2), **figures}
    RESULTS.write_text(json.dumps(data, indent=2, sort_keys=True))


def both_transports(hook: EnOSHook, method: str, *args):
    """Run a hook method over requests and over aiohttp; return [(result or error, seconds)] each."""
    sync = timed(lambda: getattr(hook, method)(*args))
    TOKENS.clear()

    async def run_async():
        async with clients_lease():
            return await getattr(hook, f"a{method}")(*args)

    asynchronous = timed(lambda: asyncio.run(run_async()))
    return [sync, asynchronous]


# ----------------------------------------------------------------------------------------- redirects


def _redirecting(gateway, status: int, *, token_too: bool = False):
    """Return (the gateway the connection uses, the origin it redirects to)."""
    elsewhere = Gateway(lambda seen: token_reply() if seen.path == TOKEN_PATH else Reply(body=envelope("")))
    location = f"{elsewhere.url}/redirected?action=cancel&accessToken=s3cr3t"

    def script(seen):
        if seen.path == TOKEN_PATH and not token_too:
            return token_reply()
        return Reply(status, body=b"moved", headers={"Location": location})

    return gateway(script), elsewhere


@pytest.mark.parametrize("status", [301, 302, 303, 307, 308])
def test_redirects_are_not_followed_by_either_transport(gateway, status):
    main, elsewhere = _redirecting(gateway, status)
    try:
        hook = EnOSHook()
        outcomes = both_transports(hook, "get_flow_instance", INSTANCE)
        for err, _ in outcomes:
            assert isinstance(err, EnOSAPIError) and err.http_status == status
            assert f"HTTP {status} redirect to {elsewhere.url}" in str(err)
            assert "s3cr3t" not in str(err) and "redirected" not in str(err)
        assert elsewhere.seen == []  # no credentials, no request went there
        assert main.count("get") == 2  # one per transport: a redirect is not retried
        record(
            f"redirect {status} (get, sync/async)", max(s for _, s in outcomes), requests=main.count("get")
        )
    finally:
        elsewhere.close()


def test_a_redirected_cancel_reports_no_outcome(gateway):
    from airflow_enos_provider.operators.flow_instance import CancelFlowInstanceOperator

    main, elsewhere = _redirecting(gateway, 302)
    try:
        operator = CancelFlowInstanceOperator(task_id="cancel", flow_inst_id=INSTANCE)
        result, seconds = timed(lambda: operator.execute(context={}))
        assert isinstance(result, EnOSError) and "HTTP 302 redirect" in str(result)
        assert elsewhere.seen == []
        # the refused cancel, then the read that would show a final status: both refused
        assert (main.count("cancel"), main.count("get")) == (1, 1)
        record("redirect 302 (cancel operator)", seconds, requests=len(main.seen))
    finally:
        elsewhere.close()


def test_a_redirected_token_request_sends_no_credentials_elsewhere(gateway):
    main, elsewhere = _redirecting(gateway, 307, token_too=True)
    try:
        for err, _ in both_transports(EnOSHook(), "get_flow_instance", INSTANCE):
            assert isinstance(err, EnOSAPIError) and err.operation == "get_access_token"
            assert "HTTP 307 redirect" in str(err)
        assert elsewhere.seen == [] and main.count(path=TOKEN_PATH) == 2 and main.count("get") == 0
    finally:
        elsewhere.close()


# ------------------------------------------------------------------------------- trickle and stall

TRICKLE = Reply(body=envelope({"instanceId": INSTANCE, "status": 2}, msg="x" * 200), interval=0.05)


@pytest.mark.parametrize("head", [False, True], ids=["body", "headers"])
def test_a_trickling_gateway_meets_one_deadline_in_both_transports(gateway, head):
    trickle = Reply(body=TRICKLE.body, interval=TRICKLE.interval, trickle_head=head)
    server = gateway(with_token(lambda seen: trickle), timeout=1.0)
    outcomes = both_transports(EnOSHook(), "get_flow_instance", INSTANCE)
    for err, _ in outcomes:
        assert isinstance(err, EnOSConnectionError) and "within 1 s" in str(err)
    # the client hung up long before the reply was out (it takes 0.05 s a byte, 13 s in all)
    hung_up = server.hang_ups(2)
    assert len(hung_up) == 2 and all(sent < length / 2 for sent, length in hung_up)
    assert server.count("get") == 2
    record(
        f"trickle {'headers' if head else 'body'} (timeout 1 s, sync / async)",
        max(s for _, s in outcomes),
        sync_seconds=round(outcomes[0][1], 2),
        async_seconds=round(outcomes[1][1], 2),
        requests=server.count("get"),
        bytes_sent_before_hang_up=[sent for sent, _ in hung_up],
    )


def test_on_kill_cancels_within_its_budget_against_a_trickling_gateway(gateway):
    from airflow_enos_provider.operators.flow_instance import _ON_KILL_TIMEOUT, EnOSTriggerFlowOperator

    server = gateway(with_token(lambda seen: TRICKLE), timeout=30.0)
    operator = EnOSTriggerFlowOperator(task_id="start", flow_id=2438)
    operator.hook.settings  # noqa: B018 - read while the task ran
    operator.flow_inst_id = INSTANCE
    TOKENS.tokens[(operator.hook.settings.gateway_url, env.ACCESS_KEY)] = (GOOD_TOKEN, float("inf"))
    result, seconds = timed(operator.on_kill)
    assert result is None  # on_kill never raises
    assert server.count("cancel") == 1
    ((sent, length),) = server.hang_ups(1)
    assert sent < length / 2  # cut at the deadline, not when the reply ended
    record(
        "trickle on_kill cancel (budget 3 s)", seconds, budget=_ON_KILL_TIMEOUT, requests=1, bytes_sent=sent
    )


def test_a_stalled_gateway_meets_the_deadline_in_both_transports(gateway):
    server = gateway(with_token(lambda seen: Reply(stall=True)), timeout=0.5)
    outcomes = both_transports(EnOSHook(), "get_flow_instance", INSTANCE)
    for err, _ in outcomes:
        assert isinstance(err, EnOSConnectionError) and "within 0.5 s" in str(err)
    assert server.count("get") == 2 and len(server.hang_ups(2)) == 2
    record("stall (timeout 0.5 s, sync / async)", max(s for _, s in outcomes), requests=2)


# -------------------------------------------------------------------------------------- paging


def _instances(numbers):
    return [{"instanceId": f"2438-2019{n:08d}", "flowId": 2438, "status": 2} for n in numbers]


def _search_script(page_for, flow_type: int = 0):
    def script(seen):
        if seen.action == "search":
            pagination = seen.json()["pagination"]
            page, count = page_for(pagination["pageNo"], pagination["pageSize"])
            return Reply(body=envelope({"flowInsts": page, "count": count}))
        if seen.action == "get" and "flowId" in seen.target:
            return Reply(body=envelope({"flowId": 2438, "type": flow_type}))
        return Reply(body=envelope(""))

    return with_token(script)


def test_a_gateway_that_clamps_page_numbers_ends_the_search(gateway):
    clamped = _instances([1, 2])  # every page number gets the last page, count = its length
    server = gateway(_search_script(lambda page_no, size: (clamped, len(clamped))))
    found, seconds = timed(lambda: EnOSHook().list_flow_instances(type=0, page_size=2))
    assert [i["instanceId"] for i in found] == [i["instanceId"] for i in clamped]
    assert server.count("search") == 2  # the repeated page brought nothing new
    record("clamped paging (list, page size 2)", seconds, requests=2)


def test_the_kill_switch_ends_against_a_clamping_gateway(gateway):
    clamped = _instances(range(100))  # the kill switch pages by 100
    server = gateway(_search_script(lambda page_no, size: (clamped, len(clamped))))
    result, seconds = timed(lambda: EnOSHook().cancel_flow_instances(flow_id=2438))
    assert set(result) == {i["instanceId"] for i in clamped}
    # two passes (the second finds nothing new) of two pages each, one cancel per instance
    assert (server.count("search"), server.count("cancel")) == (4, 100)
    record("clamped paging (kill switch, 100 instances)", seconds, searches=4, cancels=100)


def test_a_gateway_that_never_runs_out_stops_at_the_cap_with_a_warning(gateway, capfd):
    # Each page is full of new ids and count grows past what was collected: only the cap ends it.
    server = gateway(
        _search_script(
            lambda page_no, size: (_instances(range(page_no * size, page_no * size + size)), 4 + 2 * page_no)
        )
    )
    found, seconds = timed(lambda: EnOSHook().list_flow_instances(type=0, page_size=2))
    # the first count, 6, is 3 pages: the cap is twice that plus one
    assert server.count("search") == 7 and len(found) == 14
    assert "stopped after 7 pages of 2 (its cap)" in "".join(capfd.readouterr())
    record("endless paging (cap from count 6, page size 2)", seconds, requests=7)


# --------------------------------------------------------------------- oversize and malformed replies

MALFORMED = {
    "msg of 5 MB": (200, json.dumps({"code": 62102, "msg": "m" * 5_000_000}).encode()),
    "code 0.9": (200, b'{"code": 0.9, "data": {"status": 8}}'),
    "code false": (200, b'{"code": false, "data": {"status": 8}}'),
    "code [0]": (200, b'{"code": [0], "data": {"status": 8}}'),
    "code 1e400": (200, b'{"code": 1e400, "data": {"status": 8}}'),
    "code NaN": (200, b'{"code": NaN, "data": {"status": 8}}'),
    "code of 5000 digits": (200, b'{"code": ' + b"9" * 5000 + b"}"),
    "nested 200000 deep": (200, b'{"code": 0, "data": ' + b"[" * 200_000 + b"]" * 200_000 + b"}"),
    "33 MiB body": (200, b'{"code": 0, "data": "' + b"x" * (33 * 1024 * 1024) + b'"}'),
    "code 0 with HTTP 500": (500, envelope({"status": 8})),
    "not JSON": (200, b"<html>OK</html>"),
    "invalid UTF-8": (200, b'{"code": 0, "data": "\xff\xfe"}'),
}


@pytest.mark.parametrize("case", list(MALFORMED))
def test_a_malformed_reply_is_a_typed_error_in_both_transports(gateway, case):
    status, body = MALFORMED[case]
    server = gateway(with_token(lambda seen: Reply(status, body=body)))
    outcomes = both_transports(EnOSHook(retries=0), "get_flow_instance", INSTANCE)
    for err, _ in outcomes:
        assert isinstance(err, EnOSAPIError), repr(err)[:300]
        assert len(str(err)) < 4000  # outside text is clipped
    if case == "msg of 5 MB":
        assert "[clipped: 5000000 characters in all]" in str(outcomes[0][0])
    assert server.count("get") == 2
    record(f"malformed: {case}", max(s for _, s in outcomes), requests=2, error=str(outcomes[0][0])[:160])


def test_a_cancel_answered_without_an_envelope_is_not_reported_cancelled(gateway):
    from airflow_enos_provider.operators.flow_instance import CancelFlowInstanceOperator

    server = gateway(with_token(lambda seen: Reply(body=b"OK")))
    operator = CancelFlowInstanceOperator(task_id="c", flow_inst_id=INSTANCE, cancel_timeout=0.2)
    result, seconds = timed(lambda: operator.execute({}))
    # unreadable replies are transient: repeated through cancel_timeout, then the task fails
    assert isinstance(result, EnOSError) and "not JSON" in str(result)
    assert server.count("cancel") >= 1
    record("non-envelope reply to a cancel", seconds, requests=len(server.seen))


@pytest.mark.parametrize("instance_id", [None, "", 2440, "../2440-1", "2440-2026 12", "x" * 100])
def test_a_trigger_reply_without_a_usable_instance_id_is_no_trigger(gateway, instance_id):
    server = gateway(with_token(lambda seen: Reply(body=envelope({"flowInstanceId": instance_id}))))
    with pytest.raises(EnOSAPIError, match="flowInstanceId in the documented shape"):
        EnOSHook().trigger_flow(2440, trigger_time=1_796_342_400_000)
    assert server.count("trigger") == 1  # a code-0 reply: nothing to repeat, and nothing reported


# ------------------------------------------------------------------------------------- bad tokens

BAD_TOKENS = {
    "CR LF in the token": {"token": "abc\r\nX-Injected: 1"},
    "non-Latin-1 token": {"token": "tökén-秘密"},
    "expire '7200s'": {"expire": "7200s"},
    "expire true": {"expire": True},
    "expire -1": {"expire": -1},
    "token of 5000 characters": {"token": "t" * 5000},
    "token a number": {"token": 12345},
    "no data": None,
}


@pytest.mark.parametrize("case", list(BAD_TOKENS))
def test_a_bad_token_reply_is_a_typed_error_that_never_quotes_the_token(gateway, case):
    fields = BAD_TOKENS[case]
    if fields is None:
        reply = Reply(body=b'{"status": 0, "msg": "ok", "data": null}')
    else:
        reply = token_reply(**fields)
    server = gateway(lambda seen: reply if seen.path == TOKEN_PATH else Reply(body=envelope({"status": 2})))
    outcomes = both_transports(EnOSHook(), "get_flow_instance", INSTANCE)
    token = (fields or {}).get("token")
    for err, _ in outcomes:
        assert isinstance(err, EnOSAPIError) and err.operation == "get_access_token", repr(err)
        if isinstance(token, str) and token != GOOD_TOKEN:
            assert token not in str(err) and token not in repr(err)
    assert server.count("get") == 0  # no call was made with it
    record(f"bad token: {case}", max(s for _, s in outcomes), token_requests=server.count(path=TOKEN_PATH))


# ------------------------------------------------------------------------------- input, before any request


@pytest.mark.parametrize(
    ("call", "field"),
    [
        (lambda hook: hook.cancel_flow_instance("2438_2019-08-08"), "flow_inst_id"),
        (lambda hook: hook.get_flow_instance("2438-2019 0808"), "flow_inst_id"),
        (lambda hook: hook.get_task_instance("task-1"), "task_inst_id"),
        (
            lambda hook: hook.trigger_flow(2438, parameters={"day": datetime(2024, 1, 1, tzinfo=UTC)}),
            "parameters['day']",
        ),
        (lambda hook: hook.trigger_flow(2438, parameters={"map": {(1, 2): "x"}}), "parameters['map']"),
        (lambda hook: hook.trigger_flow(2438, parameters={"text": "a\ud800b"}), "parameters['text']"),
        (lambda hook: hook.trigger_flow(2438, parameters={"n": float("nan")}), "parameters['n']"),
        (lambda hook: hook.trigger_flow(2438, parameters={"\udc80": "x"}), "parameters: key"),
    ],
)
def test_bad_input_is_refused_naming_the_field_before_any_request(gateway, call, field):
    server = gateway(with_token(lambda seen: Reply(body=envelope(""))))
    with pytest.raises(EnOSValidationError) as raised:
        call(EnOSHook())
    assert field in str(raised.value)
    assert server.seen == []


def test_a_host_with_whitespace_is_refused_naming_the_host(monkeypatch):
    monkeypatch.setenv("AIRFLOW_CONN_ENOS_DEFAULT", env.connection_json("http://127.0.0.1:9/ gateway"))
    with pytest.raises(EnOSValidationError, match="host must be a URL without spaces"):
        EnOSHook().get_flow_instance(INSTANCE)


# ----------------------------------------------------------------------------------------- the pool


def test_one_hook_shared_by_32_threads_logs_no_pool_warning(enos_conn, caplog):
    hook = EnOSHook()
    hook.get_server_time()
    barrier = threading.Barrier(32)
    errors: list[BaseException] = []

    def read() -> None:
        barrier.wait()
        try:
            for _ in range(3):
                hook.get_flow_instance(env.RUNNING_ID)
        except BaseException as err:  # noqa: BLE001
            errors.append(err)

    with caplog.at_level(logging.WARNING, logger="urllib3"):
        threads = [threading.Thread(target=read) for _ in range(32)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    assert errors == []
    assert "Connection pool is full" not in caplog.text
    assert enos_conn.state.count("flowInstances.get") == 96
    hook.close()
