"""The emulator's token service over HTTP: get, refresh, expiry, replays."""

from __future__ import annotations

import pytest

from airflow_enos_provider.emulator import EnOSEmulator
from tests.emulator.api.client import REFRESH_PATH, TOKEN_PATH, Client

# --------------------------------------------------------------------------- token service


def test_token_get_issues_a_token(client: Client) -> None:
    envelope = client.post_token(client.token_body())
    assert envelope["status"] == 0
    assert envelope["msg"] == "SUCCESS"
    assert envelope["business"] == "apim-token-service"
    assert envelope["data"]["expire"] == 7200
    assert envelope["data"]["accessToken"] in client.emulator.state.issued_tokens()


def test_token_get_again_returns_same_token_with_remaining_expire(
    client: Client, emulator: EnOSEmulator
) -> None:
    first = client.post_token(client.token_body())["data"]
    emulator.state.advance(100)
    second = client.post_token(client.token_body())["data"]
    assert second["accessToken"] == first["accessToken"]
    assert second["expire"] == 7100
    assert len(emulator.state.issued_tokens()) == 1


def test_token_replayed_encryption_is_refused(client: Client) -> None:
    body = client.token_body()
    assert client.post_token(body)["status"] == 0
    replay = client.post_token(body)
    assert replay["status"] == 1001
    assert replay["data"] is None


def test_token_bad_encryption_and_unknown_app(client: Client) -> None:
    wrong_secret = client.token_body(secret="not-the-secret")
    assert client.post_token(wrong_secret)["status"] == 1003
    unknown = client.token_body(app_key="ak-nobody")
    assert client.post_token(unknown)["status"] == 1002


@pytest.mark.parametrize("missing", ["appKey", "timestamp", "encryption"])
def test_token_missing_field_is_1202(client: Client, missing: str) -> None:
    body = client.token_body()
    del body[missing]
    envelope = client.post_token(body)
    assert envelope == {
        "status": 1202,
        "msg": envelope["msg"],
        "business": "apim-token-service",
        "data": None,
    }


def test_token_empty_and_unparseable_bodies(client: Client, emulator: EnOSEmulator) -> None:
    assert client.session.post(emulator.url + TOKEN_PATH).json()["status"] == 1202
    assert client.session.post(emulator.url + TOKEN_PATH, data=b"{nope").json()["status"] == 1004


def test_token_expiry_with_manual_clock_and_short_ttl(emulator: EnOSEmulator) -> None:
    emulator.state.token_ttl = 5
    client = Client(emulator)
    first = client.get_token()
    assert client.ok("GET", "time", "getCurrentTime") == emulator.state.now_ms()
    emulator.state.advance(4.5)
    assert client.post_token(client.token_body())["data"] == {"accessToken": first, "expire": 1}
    emulator.state.advance(0.5)
    expired = client.call("GET", "time", "getCurrentTime")
    assert expired.status_code == 401
    assert expired.json() == {"code": 1203, "msg": "Access token expired"}
    second = client.get_token()
    assert second != first
    assert client.ok("GET", "time", "getCurrentTime") == emulator.state.now_ms()


def test_expire_tokens_hook(client: Client, emulator: EnOSEmulator) -> None:
    first = client.get_token()
    emulator.state.expire_tokens()
    assert client.call("GET", "time", "getCurrentTime").json()["code"] == 1203
    assert client.get_token() != first


def test_token_refresh(client: Client, emulator: EnOSEmulator) -> None:
    old = client.get_token()
    envelope = client.post_token({**client.token_body(), "accessToken": old}, REFRESH_PATH)
    assert envelope["status"] == 0
    new = envelope["data"]["accessToken"]
    assert new != old
    # The refreshed-away token is expired; the new one works.
    assert client.call("GET", "time", "getCurrentTime").status_code == 401
    client.token = new
    client.ok("GET", "time", "getCurrentTime")
    unknown = client.post_token({**client.token_body(), "accessToken": "feedbeef"}, REFRESH_PATH)
    assert unknown["status"] == 1204
    assert client.post_token(client.token_body(), REFRESH_PATH)["status"] == 1202
