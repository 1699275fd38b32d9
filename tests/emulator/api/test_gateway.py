"""The emulator's gateway checks over HTTP: tokens, signatures, unknown paths, user and org."""

from __future__ import annotations

import json
from urllib.parse import urlencode

import requests

from airflow_enos_provider._protocol.signing import request_signature
from airflow_enos_provider.emulator import EnOSEmulator
from tests.emulator.api.client import (
    APP_SECRET,
    BP,
    FLOW,
    ORG,
    SEEDED,
    TOKEN_PATH,
    USER,
    Client,
)

# --------------------------------------------------------------------------- gateway checks


def test_missing_or_unknown_token_is_401(client: Client, emulator: EnOSEmulator) -> None:
    bare = requests.get(f"{emulator.url}{BP}/time?action=getCurrentTime&userId={USER}&orgId={ORG}")
    assert bare.status_code == 401
    assert bare.json() == {"message": "Invalid credentials"}
    client.token = "0" * 32
    assert client.call("GET", "time", "getCurrentTime").json() == {"message": "Invalid credentials"}


def test_signature_mismatch_is_401(client: Client) -> None:
    wrong = client.call("GET", "time", "getCurrentTime", headers={"apim-signature": "0" * 64})
    assert wrong.status_code == 401
    assert wrong.json() == {"message": "Signature verification failed"}
    no_timestamp = client.call("GET", "time", "getCurrentTime", headers={"apim-timestamp": "soon"})
    assert no_timestamp.json() == {"message": "Signature verification failed"}


def test_signature_covers_the_exact_body_bytes(client: Client) -> None:
    token = client.get_token()
    query = urlencode({"action": "cancel", "userId": USER, "orgId": ORG})
    signed = json.dumps({"flowInstId": SEEDED}).encode()
    sent = json.dumps({"flowInstId": SEEDED}, indent=2).encode()
    ts = client.emulator.state.now_ms()
    reply = client.session.post(
        f"{client.emulator.url}{BP}/flowInstances?{query}",
        data=sent,
        headers={
            "apim-accesstoken": token,
            "apim-timestamp": str(ts),
            "apim-signature": request_signature(token, query, signed, ts, APP_SECRET),
        },
    )
    assert reply.status_code == 401
    assert client.emulator.state.instance_status(SEEDED) == 2


def test_signature_uses_decoded_query_values(client: Client) -> None:
    # "a b+c" travels percent-encoded; the emulator must verify against the decoded value.
    code, msg = client.error("GET", "flowInstances", "get", extra={"flowInstId": "a b+c/é"})
    assert (code, msg) == (62102, "Instance not found")
    assert client.emulator.state.requests[-1].query["flowInstId"] == "a b+c/é"


def test_unknown_path_is_404(client: Client, emulator: EnOSEmulator) -> None:
    for method, path in [
        ("GET", "/nope"),
        ("GET", f"{BP}/widgets?action=get"),
        ("DELETE", f"{BP}/flows?action=get"),
        ("GET", TOKEN_PATH),
    ]:
        reply = client.session.request(method, emulator.url + path)
        assert reply.status_code == 404
        assert reply.json() == {"message": "Not Found"}


def test_unknown_action_is_refused_not_routed_to_a_neighbour(client: Client, emulator: EnOSEmulator) -> None:
    # EnOS's reply to an action a resource lacks is undocumented: the emulator answers 62102 after
    # the access checks, and never lets a near route (trigger, for POST /flows) handle it.
    before = emulator.state.instance_ids()
    assert client.error("POST", "flows", "bogus", {"flowId": FLOW}) == (
        62102,
        "Invalid parameter: unsupported action 'bogus'",
    )
    assert client.error("POST", "flowInstances", "get", {"flowInstId": SEEDED})[0] == 62102
    assert emulator.state.instance_ids() == before
    assert emulator.state.instance_status(SEEDED) == 2
    refused = emulator.state.requests[-2]
    assert (refused.operation, refused.query["action"], refused.code) == (None, "bogus", 62102)
    assert emulator.state.count("flows.trigger") == 0


# --------------------------------------------------------------------------- common parameters


def test_user_and_org_checks(client: Client, emulator: EnOSEmulator) -> None:
    missing = (62102, "Invalid parameter: userId/orgId is required")
    assert client.error("GET", "time", "getCurrentTime", user=None) == missing
    assert client.error("GET", "time", "getCurrentTime", org=None) == missing
    assert client.error("GET", "time", None)[0] == 62102
    mismatch = (62101, "User does not exist or does not match orgId")
    assert client.error("GET", "time", "getCurrentTime", user="u-ghost") == mismatch
    assert client.error("GET", "time", "getCurrentTime", org="o-elsewhere") == mismatch
    assert client.error("GET", "time", "getCurrentTime", user="u-locked") == (62105, "Account is locked")
    emulator.state.set_user_locked("u-locked", False)
    client.ok("GET", "time", "getCurrentTime", user="u-locked")
    assert client.error("GET", "flows", "explode")[0] == 62102


def test_unparseable_body_is_invalid_request_body(client: Client) -> None:
    expected = (62102, "Invalid request body.")
    assert client.error("POST", "flowInstances", "cancel", raw_body=b"{not json") == expected
    assert client.error("POST", "flowInstances", "cancel", raw_body=b"[1, 2]") == expected
