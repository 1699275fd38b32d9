"""What the emulator's tests share: the seeded tenant, its names, and an HTTP client that signs."""

from __future__ import annotations

import itertools
import json
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import requests

from airflow_enos_provider._protocol.signing import request_signature, token_encryption
from airflow_enos_provider.emulator import EnOSEmulator

APP_KEY = "ak-demo"
APP_SECRET = "sk-demo"
USER = "u-demo"
ORG = "o-demo"
FLOW = 2438
SEEDED = "2438-201908081020"
# 2019-08-08 10:20:00 UTC, the minute the seeded instance id names
SEEDED_TRIGGER_MS = 1565259600000
TOKEN_PATH = "/apim-token-service/v2.0/token/get"
REFRESH_PATH = "/apim-token-service/v2.0/token/refresh"
BP = "/batch-processing-service/v2.1"
REPO_ROOT = Path(__file__).resolve().parents[3]
_STAMPS = itertools.count(1)
ALL_STATUSES = ",".join(str(code) for code in range(-1, 11))
# Generated task ids, in seed order: flow 2438's extract, transform, load, then flow 77's report.
EXTRACT, TRANSFORM, LOAD, REPORT = "100001", "100002", "100003", "100004"


def search_body(**fields: Any) -> dict[str, Any]:
    """Return a List Flow Instances body with every mandatory field (list_flow_instances.md).

    The defaults filter nothing but the type: manual flows, any owner, every status, any time.
    """
    return {
        "type": 0,
        "expression": "",
        "owner": "",
        "fromTriggerTime": 0,
        "toTriggerTime": 4_102_444_800_000,  # 2100-01-01
        "status": ALL_STATUSES,
        **fields,
    }


def make_seed() -> dict[str, Any]:
    """Return a fresh seed dict (tests mutate their emulator, never this shape)."""
    return {
        "apps": [{"access_key": APP_KEY, "secret_key": APP_SECRET}],
        "users": [
            {"user_id": USER, "org_id": ORG},
            {"user_id": "u-other", "org_id": ORG},
            {"user_id": "u-locked", "org_id": ORG, "locked": True},
        ],
        "flows": [
            {
                "flow_id": FLOW,
                "name": "daily_load",
                "owner": USER,
                "init_seconds": 1,
                "run_seconds": 30,
                "tasks": ["extract", "transform", "load"],
            },
            {"flow_id": 77, "name": "Hourly_Report", "owner": "u-other", "tasks": ["report"]},
        ],
        "instances": [
            {"instance_id": SEEDED, "flow_id": FLOW, "status": "RUNNING", "trigger_time": SEEDED_TRIGGER_MS},
            {"instance_id": "77-done", "flow_id": 77, "status": 1},
        ],
    }


class Client:
    """Speak the documented EnOS scheme to the emulator (token call + signed requests)."""

    def __init__(self, emulator: EnOSEmulator, session: requests.Session | None = None) -> None:
        """Bind the client to a running emulator.

        :param emulator: the started emulator.
        :param session: the HTTP session to use; a new one when None.
        """
        self.emulator = emulator
        self.session = session or requests.Session()
        self.token: str | None = None

    def _timestamp(self) -> int:
        # A manual clock does not move between calls; a shared counter keeps every encryption unique.
        return self.emulator.state.now_ms() + next(_STAMPS)

    def token_body(self, app_key: str = APP_KEY, secret: str = APP_SECRET) -> dict[str, Any]:
        """Return a valid token-request body with a fresh timestamp."""
        ts = self._timestamp()
        return {"appKey": app_key, "timestamp": ts, "encryption": token_encryption(app_key, ts, secret)}

    def post_token(self, body: Any, path: str = TOKEN_PATH) -> dict[str, Any]:
        """Post a token-service request and return the parsed envelope."""
        reply = self.session.post(self.emulator.url + path, json=body)
        assert reply.status_code == 200
        return reply.json()

    def get_token(self) -> str:
        """Fetch a token (kept for later calls) and return it."""
        envelope = self.post_token(self.token_body())
        assert envelope["status"] == 0, envelope
        self.token = envelope["data"]["accessToken"]
        return self.token

    def call(
        self,
        method: str,
        resource: str,
        action: str | None,
        body: Any = None,
        *,
        user: str | None = USER,
        org: str | None = ORG,
        extra: dict[str, str] | None = None,
        raw_body: bytes | None = None,
        headers: dict[str, str] | None = None,
    ) -> requests.Response:
        """Send one signed Batch Processing call and return the raw response."""
        params: dict[str, str] = {}
        if action is not None:
            params["action"] = action
        if user is not None:
            params["userId"] = user
        if org is not None:
            params["orgId"] = org
        params.update(extra or {})
        query = urlencode(params)
        data = raw_body if raw_body is not None else (json.dumps(body).encode() if body is not None else None)
        token = self.token or self.get_token()
        ts = self._timestamp()
        sent = {
            "apim-accesstoken": token,
            "apim-timestamp": str(ts),
            "apim-signature": request_signature(token, query, data, ts, APP_SECRET),
            "Content-Type": "application/json;charset=UTF-8",
        }
        sent.update(headers or {})
        return self.session.request(
            method, f"{self.emulator.url}{BP}/{resource}?{query}", data=data, headers=sent
        )

    def ok(self, method: str, resource: str, action: str, body: Any = None, **kwargs: Any) -> Any:
        """Send a call that must succeed and return its ``data``."""
        reply = self.call(method, resource, action, body, **kwargs)
        assert reply.status_code == 200
        envelope = reply.json()
        assert envelope["code"] == 0, envelope
        assert envelope["msg"] == "OK"
        return envelope["data"]

    def error(
        self, method: str, resource: str, action: str | None, body: Any = None, **kwargs: Any
    ) -> tuple[int, str]:
        """Send a call that must fail with a business error and return ``(code, msg)``."""
        reply = self.call(method, resource, action, body, **kwargs)
        assert reply.status_code == 200
        envelope = reply.json()
        assert envelope["code"] != 0, envelope
        assert envelope["data"] is None
        assert len(envelope["requestId"]) == 32
        return envelope["code"], envelope["msg"]

    def instance(self, instance_id: str) -> dict[str, Any]:
        """Return a FlowInstance through the API."""
        return self.ok("GET", "flowInstances", "get", extra={"flowInstId": instance_id})

    def trigger(self, flow_id: int = FLOW, **fields: Any) -> str:
        """Trigger a flow through the API (at the emulator's now unless told) and return the instance id."""
        body = {"flowId": flow_id, "triggerTime": self.emulator.state.now_ms(), **fields}
        return self.ok("POST", "flows", "trigger", body)["flowInstanceId"]

    def search(self, **fields: Any) -> dict[str, Any]:
        """Search instances through the API: :func:`search_body` with ``fields`` changed."""
        return self.ok("POST", "flowInstances", "search", search_body(**fields))
