"""The protocol core without HTTP: the call flow against scripted replies, and what the core imports."""

from __future__ import annotations

import ast
import asyncio
import contextlib
import json
import logging
import socket
import subprocess
import sys
import threading
import types
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from airflow_enos_provider._connection import EnOSConnectionSettings
from airflow_enos_provider._protocol import operations as ops
from airflow_enos_provider._protocol.flow import Caller, FetchToken, Flow, Send, Sleep
from airflow_enos_provider._protocol.operations import PreparedRequest, RawReply
from airflow_enos_provider._protocol.retry import RetryCounter, RetryPolicy
from airflow_enos_provider._protocol.signing import request_signature
from airflow_enos_provider._protocol.tokens import TokenCache
from airflow_enos_provider._transports.drivers import run_async, run_sync
from airflow_enos_provider.exceptions import (
    EnOSAPIError,
    EnOSAuthenticationError,
    EnOSConnectionError,
    EnOSError,
)
from airflow_enos_provider.hooks.enos import EnOSHook

PACKAGE = Path(__file__).resolve().parents[2] / "airflow_enos_provider"
SETTINGS = EnOSConnectionSettings(
    conn_id="scripted",
    gateway_url="https://gateway.invalid",
    access_key="ak-scripted",
    secret_key="sk-scripted",
    org_id="o-scripted",
    user_id="u-scripted",
)
Reply = RawReply | EnOSError


def token_reply(token: str, expire: int = 7200) -> RawReply:
    body = {"status": 0, "msg": "Success", "data": {"accessToken": token, "expire": expire}}
    return RawReply(200, json.dumps(body).encode(), {})


def batch_reply(data: Any = None, code: int = 0, http_status: int = 200, **headers: str) -> RawReply:
    body = {"code": code, "msg": "OK" if code == 0 else "refused", "data": data}
    return RawReply(http_status, json.dumps(body).encode(), headers)


def lost(request_sent: bool = True) -> EnOSConnectionError:
    return EnOSConnectionError("scripted: no reply", maybe_sent=request_sent)


def caller(retries: int = 3, max_wait: float = 60.0, tokens: TokenCache | None = None) -> Caller:
    return Caller(
        SETTINGS,
        RetryPolicy(retries=retries, max_wait=max_wait),
        timeout=5.0,
        log=logging.getLogger("tests.protocol"),
        retry_count=RetryCounter(),
        tokens=tokens or TokenCache(),
    )


class ScriptedTransport:
    """A sync transport that answers each request from a list and records the requests."""

    def __init__(self, replies: list[Reply]) -> None:
        self.replies = list(replies)
        self.sent: list[PreparedRequest] = []

    def send(self, request: PreparedRequest) -> RawReply:
        self.sent.append(request)
        reply = self.replies.pop(0)
        if isinstance(reply, EnOSError):
            raise reply
        return reply

    def close(self) -> None:
        pass

    def names(self) -> list[str]:
        return [r.operation for r in self.sent]


def scripted_hook(
    monkeypatch: pytest.MonkeyPatch, replies: list[Reply], retries: int = 3
) -> tuple[EnOSHook, ScriptedTransport, list[float]]:
    """An EnOSHook on SETTINGS whose requests get ``replies``, with a warm token; sleeps are recorded."""
    from airflow_enos_provider._protocol.tokens import TOKENS
    from airflow_enos_provider._transports import drivers

    slept: list[float] = []
    monkeypatch.setattr(drivers, "time", types.SimpleNamespace(sleep=slept.append))
    _warm(TOKENS)
    hook = EnOSHook("scripted", retries=retries, retry_max_wait=60.0)
    transport = ScriptedTransport(replies)
    hook.__dict__.update(settings=SETTINGS, _transport=transport)
    return hook, transport, slept


class Script:
    """Step a flow by hand: answer each Send from a list, record Sends and Sleeps, never sleep."""

    def __init__(self, replies: list[Reply]) -> None:
        self.replies = list(replies)
        self.sent: list[PreparedRequest] = []
        self.slept: list[float] = []

    def run(self, flow: Flow[Any]) -> Any:
        result: Any = None
        failure: EnOSError | None = None
        while True:
            try:
                action = flow.send(result) if failure is None else flow.throw(failure)
            except StopIteration as done:
                return done.value
            result, failure = None, None
            if isinstance(action, Send):
                self.sent.append(action.request)
                reply = self.replies.pop(0)
                if isinstance(reply, EnOSError):
                    failure = reply
                else:
                    result = reply
            elif isinstance(action, Sleep):
                self.slept.append(action.seconds)
            else:
                assert isinstance(action, FetchToken)
                try:
                    result = action.cached() or self.run(action.fetch())
                except EnOSError as err:
                    failure = err

    def names(self) -> list[str]:
        return [r.operation for r in self.sent]


def test_an_expired_token_is_replaced_once_without_counting_an_attempt():
    run = caller()
    script = Script([token_reply("tok-1"), batch_reply(code=1203), token_reply("tok-2"), batch_reply()])
    script.run(run.call(ops.cancel_flow_instance("2438-201908081020")))
    assert script.names() == ["get_access_token", "cancel_flow_instance"] * 2
    first, second = script.sent[1], script.sent[3]
    assert (first.headers["apim-accesstoken"], second.headers["apim-accesstoken"]) == ("tok-1", "tok-2")
    assert script.slept == []
    assert run.retry_count.value == 0
    # each token request is signed with its own timestamp: a repeated one is refused as a replay
    stamps = [json.loads(script.sent[i].body or b"")["timestamp"] for i in (0, 2)]
    assert stamps[0] < stamps[1]


def test_a_token_refused_twice_is_not_replaced_again():
    script = Script(
        [token_reply("tok-1"), batch_reply(code=1203), token_reply("tok-2"), batch_reply(code=1203)]
    )
    with pytest.raises(EnOSAPIError) as caught:
        script.run(caller().call(ops.GET_CURRENT_TIME))
    assert caught.value.code == 1203
    assert script.names().count("get_access_token") == 2


def test_a_request_is_signed_over_the_bytes_it_sends():
    tokens = TokenCache()
    tokens.store(("https://gateway.invalid", "ak-scripted"), {"accessToken": "tok-cached", "expire": 7200})
    script = Script([batch_reply({"flowInstanceId": "2440-1"})])
    op = ops.trigger_flow(2440, 1_700_000_000_000, {"k": "v"}, None)
    script.run(caller(tokens=tokens).call(op))
    (request,) = script.sent
    query = request.url.split("?", 1)[1]
    assert query == "action=updateAndTrigger&userId=u-scripted&orgId=o-scripted"
    pairs = [tuple(p.split("=", 1)) for p in query.split("&")]
    expected = request_signature(
        "tok-cached", pairs, request.body, int(request.headers["apim-timestamp"]), "sk-scripted"
    )
    assert request.headers["apim-signature"] == expected
    assert json.loads(request.body or b"") == {
        "flowId": 2440,
        "triggerTime": 1_700_000_000_000,
        "parameters": [{"key": "k", "value": "v"}],  # the documented list, from the user's mapping
    }


def _warm(tokens: TokenCache) -> TokenCache:
    tokens.store(("https://gateway.invalid", "ak-scripted"), {"accessToken": "tok-warm", "expire": 7200})
    return tokens


def test_a_trigger_refused_after_processing_is_never_repeated_blindly():
    # a 500 may come after EnOS started the flow: without a search before it, no repeat is safe
    run = caller(tokens=_warm(TokenCache()))
    script = Script([batch_reply(http_status=500, code=62109)])
    with pytest.raises(EnOSAPIError):
        script.run(run.call(ops.trigger_flow(2440, 1_700_000_000_000, None, None)))
    assert script.names() == ["trigger_flow"]


def test_429_waits_as_long_as_retry_after_asks():
    run = caller(tokens=_warm(TokenCache()))
    script = Script([batch_reply(http_status=429, code=None, **{"Retry-After": "7"}), batch_reply(123)])
    assert script.run(run.call(ops.GET_CURRENT_TIME)) == 123
    assert script.slept == [7.0]
    assert run.retry_count.value == 1


def test_the_attempt_budget_ends_the_retries():
    run = caller(retries=2, tokens=_warm(TokenCache()))
    script = Script([batch_reply(http_status=503, code=None)] * 3)
    with pytest.raises(EnOSAPIError) as caught:
        script.run(run.call(ops.get_flow_instance("2438-1")))
    assert caught.value.http_status == 503
    assert len(script.sent) == 3
    assert len(script.slept) == 2


def test_the_wait_budget_ends_the_retries_before_the_attempts_do():
    # Retry-After 40 is capped at max_delay (30 s); a third wait would pass max_wait (60 s)
    run = caller(retries=10, max_wait=60.0, tokens=_warm(TokenCache()))
    script = Script([batch_reply(http_status=503, code=None, **{"Retry-After": "40"})] * 3)
    with pytest.raises(EnOSAPIError):
        script.run(run.call(ops.get_flow_instance("2438-1")))
    assert script.slept == [30.0, 30.0]
    assert len(script.sent) == 3


def test_a_token_that_cannot_be_had_is_not_retried_by_the_call():
    script = Script([token_reply("unused")])
    script.replies[0] = RawReply(200, b'{"status": 1003, "msg": "Encryption is not valid"}', {})
    with pytest.raises(EnOSAuthenticationError) as caught:
        script.run(caller().call(ops.cancel_flow_instance("2438-1")))
    assert caught.value.code == 1003
    assert script.names() == ["get_access_token"]


class _SyncScript:
    def __init__(self, replies: list[Reply]) -> None:
        self.replies, self.sent = list(replies), []

    def send(self, request: PreparedRequest) -> RawReply:
        self.sent.append(request.operation)
        reply = self.replies.pop(0)
        if isinstance(reply, EnOSError):
            raise reply
        return reply


class _AsyncScript(_SyncScript):
    async def send(self, request: PreparedRequest) -> RawReply:  # type: ignore[override]
        return _SyncScript.send(self, request)


def _scenario() -> list[Reply]:
    # a token, an expired token, a new token, a broken connection, then the instance
    return [
        token_reply("tok-1"),
        batch_reply(code=1203),
        token_reply("tok-2"),
        lost(request_sent=False),
        batch_reply({"instanceId": "2438-1", "status": 2}),
    ]


def _run_both(make_flow: Callable[[Caller], Flow[Any]]) -> tuple[Any, ...]:
    masked: list[str] = []

    async def amask(token: str) -> None:
        masked.append(token)

    sync_transport, async_transport = _SyncScript(_scenario()), _AsyncScript(_scenario())
    sync_result = run_sync(make_flow(caller(max_wait=0.5)), sync_transport, masked.append)
    async_result = asyncio.run(run_async(make_flow(caller(max_wait=0.5)), async_transport, amask))
    return sync_result, async_result, sync_transport.sent, async_transport.sent, masked


def test_the_sync_and_async_drivers_run_the_same_flow():
    flow = lambda c: c.call(ops.get_flow_instance("2438-1"))  # noqa: E731
    sync_result, async_result, sync_sent, async_sent, masked = _run_both(flow)
    assert sync_result == async_result == {"instanceId": "2438-1", "status": 2}
    expected = ["get_access_token", "get_flow_instance", "get_access_token", "get_flow_instance"]
    assert sync_sent == async_sent == [*expected, "get_flow_instance"]
    assert masked == ["tok-1", "tok-2"] * 2  # every new token is masked, by both drivers


def test_the_core_imports_no_airflow_and_no_http_library():
    modules = sorted((PACKAGE / "_protocol").glob("*.py"))
    assert modules, "the core moved: point this test at it"
    for module in modules:
        for node in ast.walk(ast.parse(module.read_text())):
            names = (
                [a.name for a in node.names]
                if isinstance(node, ast.Import)
                else [node.module or ""]
                if isinstance(node, ast.ImportFrom)
                else []
            )
            for name in names:
                top = name.split(".")[0]
                assert top not in {"airflow", "requests", "aiohttp", "urllib3", "yarl"}, (module.name, name)
    # Loading the core, the hook's sync transport aside, leaves both HTTP libraries unloaded.
    code = (
        # Airflow 2.11's own `import airflow` loads requests: only what the core adds counts.
        "import sys, airflow; loaded = set(sys.modules);"
        "import airflow_enos_provider._protocol.flow, airflow_enos_provider._transports.drivers;"
        "print(sorted(m for m in ('requests', 'aiohttp') if m in sys.modules and m not in loaded))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]"


def test_the_emulator_runs_without_loading_airflow():
    # The emulator's CLI, the demo and the benchmark's emulator process stay light (about 0.1 s).
    code = "import sys, airflow_enos_provider.emulator; print('airflow' in sys.modules)"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "False"


@contextlib.contextmanager
def _server(behaviour: str) -> Iterator[int]:
    """Serve loopback connections that read the request and then break the exchange."""
    server = socket.create_server(("127.0.0.1", 0))
    server.settimeout(0.05)  # accept() wakes up to see the stop event
    stop = threading.Event()

    def serve() -> None:
        while not stop.is_set():
            try:
                conn, _ = server.accept()
            except TimeoutError:
                continue
            with conn:
                conn.recv(65536)
                if behaviour == "cut-short":
                    conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n{")
                elif behaviour == "silent":
                    stop.wait(10)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield server.getsockname()[1]
    finally:
        stop.set()
        thread.join(5)
        server.close()


def _send_with_both(port: int, timeout: float = 5.0) -> list[EnOSConnectionError]:
    from airflow_enos_provider._transports.aio import AiohttpTransport, aclose_clients
    from airflow_enos_provider._transports.sync import RequestsTransport

    settings = EnOSConnectionSettings("t", f"http://127.0.0.1:{port}", "ak", "sk-protocol-3e7b")
    request = ops.prepare(ops.get_flow_instance("2438-1"), settings, ("u", "o"), "tok", timeout)
    errors = []
    sync = RequestsTransport(settings)
    with pytest.raises(EnOSConnectionError) as caught:
        sync.send(request)
    sync.close()
    errors.append(caught.value)

    async def send_async() -> None:
        try:
            await AiohttpTransport(True).send(request)
        finally:
            await aclose_clients()

    with pytest.raises(EnOSConnectionError) as caught:
        asyncio.run(send_async())
    errors.append(caught.value)
    return errors


@pytest.mark.parametrize("behaviour", ["closed", "cut-short", "silent"])
def test_both_transports_say_a_broken_exchange_may_have_been_sent(behaviour):
    with _server(behaviour) as port:
        errors = _send_with_both(port, timeout=0.5)
    assert [e.maybe_sent for e in errors] == [True, True], [str(e) for e in errors]
    if behaviour == "silent":
        assert all("no reply from" in str(e) and "within 0.5 s" in str(e) for e in errors)


def test_both_transports_say_a_refused_connection_was_not_sent():
    with socket.create_server(("127.0.0.1", 0)) as closed:
        port = closed.getsockname()[1]
    errors = _send_with_both(port)
    assert [e.maybe_sent for e in errors] == [False, False], [str(e) for e in errors]
    assert all(f"could not reach http://127.0.0.1:{port}" in str(e) for e in errors)


def _gateway_error(status: int, retry_after: float | None = None) -> EnOSAPIError:
    return EnOSAPIError("gateway", operation="get_flow_instance", http_status=status, retry_after=retry_after)


def test_outage_pause_doubles_up_to_the_poll_interval_and_counts_from_the_first_failure():
    from airflow_enos_provider._protocol.retry import Outage

    outage = Outage(max_outage=None, poll_interval=10.0)
    steps = [outage.failed(_gateway_error(503), now=100.0 + t) for t in range(6)]
    assert [s.pause for s in steps] == [1.0, 2.0, 4.0, 8.0, 10.0, 10.0]
    assert [s.lasted for s in steps] == [0.0, 1.0, 2.0, 3.0, 4.0, 5.0]
    assert not any(s.give_up for s in steps)
    assert outage.recovered(now=200.0) == (6, 100.0)
    assert outage.recovered(now=201.0) is None  # recovery is reported once
    assert outage.failed(_gateway_error(502), now=300.0).lasted == 0.0  # a new outage, a new clock


def test_outage_gives_up_after_max_outage_and_never_sleeps_past_it():
    from airflow_enos_provider._protocol.retry import Outage

    outage = Outage(max_outage=30.0, poll_interval=60.0)
    assert outage.failed(_gateway_error(503), now=0.0).pause == 1.0
    assert outage.failed(_gateway_error(503), now=29.5).pause == 0.5
    final = outage.failed(_gateway_error(503), now=30.0)
    assert final.give_up and "max_outage of 30 s passed" in final.reason


def test_outage_honours_retry_after_but_not_beyond_the_poll_interval():
    from airflow_enos_provider._protocol.retry import Outage

    assert Outage(None, poll_interval=5.0).failed(_gateway_error(429, retry_after=3.0), 0.0).pause == 3.0
    assert Outage(None, poll_interval=5.0).failed(_gateway_error(429, retry_after=600.0), 0.0).pause == 5.0


@pytest.mark.parametrize(
    "err",
    [
        EnOSAPIError("bad parameter", code=62102, http_status=200, operation="get_flow_instance"),
        EnOSAPIError("forbidden", http_status=403, operation="get_flow_instance"),
        EnOSAPIError("no such user", code=62101, http_status=200, operation="get_flow_instance"),
    ],
)
def test_outage_gives_up_at_once_on_a_failure_repeating_cannot_help(err):
    from airflow_enos_provider._protocol.retry import Outage

    step = Outage(None, poll_interval=5.0).failed(err, 0.0)
    assert step.give_up and step.reason == "not a transient failure"
