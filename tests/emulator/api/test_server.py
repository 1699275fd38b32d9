"""Test the EnOS emulator's HTTP server: keep-alive, recording, concurrency, stop and restart."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import pytest
import requests

from airflow_enos_provider.emulator import EnOSEmulator, RecordedRequest
from tests.emulator.api.client import (
    APP_SECRET,
    BP,
    ORG,
    REFRESH_PATH,
    SEEDED,
    TOKEN_PATH,
    USER,
    Client,
    make_seed,
)

# --------------------------------------------------------------------------- HTTP behaviour


def test_keep_alive_reuses_one_connection(emulator: EnOSEmulator) -> None:
    with requests.Session() as session:
        client = Client(emulator, session)
        client.get_token()
        client.ok("GET", "time", "getCurrentTime")
        client.ok("GET", "flowInstances", "get", extra={"flowInstId": SEEDED})
    assert emulator.state.connections_opened == 1
    assert len({r.connection_id for r in emulator.state.requests}) == 1
    with requests.Session() as other:
        Client(emulator, other).get_token()
    assert emulator.state.connections_opened == 2


def test_requests_are_recorded_without_header_values(client: Client, emulator: EnOSEmulator) -> None:
    token = client.get_token()
    client.ok("POST", "flowInstances", "cancel", {"flowInstId": SEEDED})
    client.call("GET", "time", "getCurrentTime", headers={"apim-signature": "f" * 64})
    client.post_token({**client.token_body(), "accessToken": token}, REFRESH_PATH)
    recorded = emulator.state.requests
    operations = ["token.get", "flowInstances.cancel", "time.getCurrentTime", "token.refresh"]
    assert [r.operation for r in recorded] == operations
    assert all(isinstance(r, RecordedRequest) for r in recorded)
    cancel = recorded[1]
    assert (cancel.method, cancel.path) == ("POST", f"{BP}/flowInstances")
    assert cancel.query == {"action": "cancel", "userId": USER, "orgId": ORG}
    assert cancel.body == {"flowInstId": SEEDED}
    assert (cancel.code, cancel.http_status) == (0, 200)
    assert cancel.peer_port > 0
    assert (recorded[2].code, recorded[2].http_status) == (None, 401)
    assert recorded[3].body is not None
    assert recorded[3].body["accessToken"] == "***"
    dump = repr(recorded)
    for secret in [*emulator.state.issued_tokens(), APP_SECRET, "f" * 64]:
        assert secret not in dump
    assert emulator.state.count("flowInstances.cancel") == 1
    emulator.state.clear_requests()
    assert emulator.state.requests == []
    assert emulator.state.count("token.get") == 0


def test_concurrent_clients(emulator: EnOSEmulator) -> None:
    def worker() -> int:
        with requests.Session() as session:
            client = Client(emulator, session)
            for _ in range(25):
                client.ok("GET", "flowInstances", "get", extra={"flowInstId": SEEDED})
        return 25

    with ThreadPoolExecutor(max_workers=8) as pool:
        futures = [pool.submit(worker) for _ in range(8)]
        assert sum(f.result() for f in futures) == 200
    assert emulator.state.count("flowInstances.get") == 200
    assert emulator.state.connections_opened == 8


def test_stop_closes_keep_alive_connections() -> None:
    emulator = EnOSEmulator(make_seed()).start()
    session = requests.Session()
    Client(emulator, session).get_token()
    url = emulator.url
    emulator.stop()
    emulator.stop()  # idempotent
    with pytest.raises(requests.ConnectionError):
        session.post(url + TOKEN_PATH, json={})
    session.close()


def test_a_stopped_emulator_refuses_connections_and_restarts_with_its_state() -> None:
    emulator = EnOSEmulator(make_seed()).start()
    try:
        url, port = emulator.url, emulator.port
        Client(emulator, requests.Session()).get_token()
        emulator.state.add_instance("77-202001010000", 77, status="RUNNING")
        running = emulator.state.instance_status("77-202001010000")
        emulator.stop()
        with pytest.raises(requests.ConnectionError, match="refused"):
            requests.post(url + TOKEN_PATH, json={}, timeout=5)
        emulator.start()
        assert (emulator.url, emulator.port) == (url, port)
        with requests.Session() as session:
            Client(emulator, session).get_token()
        assert emulator.state.instance_status("77-202001010000") == running
        assert emulator.state.count("token.get") == 2
    finally:
        emulator.stop()


def test_status_history_follows_the_schedule_then_the_cancel(client: Client, emulator: EnOSEmulator) -> None:
    emulator.state.set_instance_status(SEEDED, "SUCCESS")
    start = emulator.state.now()
    instance_id = client.trigger()
    emulator.state.advance(5)
    assert [name for _, name in emulator.state.status_history(instance_id)] == ["INIT", "RUNNING"]
    client.ok("POST", "flowInstances", "cancel", {"flowInstId": instance_id})
    history = emulator.state.status_history(instance_id)
    assert [name for _, name in history] == ["INIT", "RUNNING", "CANCEL"]
    assert history[0][0] == start and history[-1][0] == start + 5
    assert [name for _, name in emulator.state.status_history(SEEDED)] == ["RUNNING", "SUCCESS"]


def test_latency_is_a_checked_setting(client: Client, emulator: EnOSEmulator) -> None:
    emulator.state.latency = 0.01
    assert client.instance(SEEDED)["instanceId"] == SEEDED
    assert emulator.state.latency == 0.01
    with pytest.raises(ValueError, match="latency must be >= 0"):
        emulator.state.latency = -1
