"""The EnOS operations the provider calls, each described once, and the signed requests built from them."""

from __future__ import annotations

import json
import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from urllib.parse import quote, urlencode

from airflow_enos_provider import __version__
from airflow_enos_provider.connection import EnOSConnectionSettings
from airflow_enos_provider.exceptions import EnOSValidationError
from airflow_enos_provider.protocol.codes import BATCH_PATH, TOKEN_PATH
from airflow_enos_provider.protocol.signing import request_signature, token_encryption
from airflow_enos_provider.status import EnOSFlowInstanceStatus, status_list
from airflow_enos_provider.validation import require_flow_inst_id, require_text

JSON_CONTENT_TYPE = "application/json;charset=UTF-8"
USER_AGENT = f"airflow-enos-provider/{__version__}"
# list_flow_instances keyword -> search body field
LIST_FILTERS = {
    "type": "type",
    "owner": "owner",
    "from_trigger_time": "fromTriggerTime",
    "to_trigger_time": "toTriggerTime",
    "fromTriggerTime": "fromTriggerTime",
    "toTriggerTime": "toTriggerTime",
    "sorters": "sorters",
}


@dataclass(frozen=True, slots=True)
class Operation:
    """One EnOS call: what to send, and whether repeating it is safe.

    :param name: the call's name in logs and errors, such as ``cancel_flow_instance``.
    :param method: the HTTP method.
    :param path: the path under the gateway URL.
    :param action: the Batch Processing ``action`` query parameter; None for the token service.
    :param query: query parameters after ``action``, ``userId`` and ``orgId``.
    :param body: the JSON body, if any.
    :param flow_inst_id: the flow instance the call is about, for messages.
    :param idempotent: repeating a call that may have reached EnOS is safe unless it starts something.
    """

    name: str
    method: str
    path: str
    action: str | None = None
    query: tuple[tuple[str, str], ...] = ()
    body: dict[str, Any] | None = None
    flow_inst_id: str | None = None
    idempotent: bool = True

    @property
    def authenticated(self) -> bool:
        """Say whether the call carries an access token (every call but the token request)."""
        return self.action is not None


@dataclass(frozen=True, slots=True)
class PreparedRequest:
    """The exact bytes a transport sends, with what its errors need to say."""

    method: str
    url: str
    body: bytes | None
    headers: dict[str, str]
    timeout: float
    operation: str
    flow_inst_id: str | None
    gateway: str


@dataclass(frozen=True, slots=True)
class RawReply:
    """What a transport got back: the status, the body bytes and the headers."""

    status: int
    body: bytes
    headers: Mapping[str, str]


GET_ACCESS_TOKEN = Operation("get_access_token", "POST", TOKEN_PATH)


def token_request(settings: EnOSConnectionSettings, timestamp: int) -> Operation:
    """Return "Get Access Token" for one attempt: it is signed in its body.

    :param settings: the connection's access key and secret key.
    :param timestamp: ms since the epoch, never used before (the token service refuses a replay).
    """
    encryption = token_encryption(settings.access_key, timestamp, settings.secret_key)
    body = {"appKey": settings.access_key, "timestamp": timestamp, "encryption": encryption}
    return Operation(GET_ACCESS_TOKEN.name, GET_ACCESS_TOKEN.method, TOKEN_PATH, body=body)


def _batch(name: str, method: str, resource: str, action: str, **fields: Any) -> Operation:
    return Operation(name, method, BATCH_PATH + resource, action, **fields)


def cancel_flow_instance(flow_inst_id: str) -> Operation:
    """Describe "Cancel Flow Instance".

    :param flow_inst_id: the instance id.
    """
    flow_inst_id = require_flow_inst_id(flow_inst_id)
    return _batch(
        "cancel_flow_instance", "POST", "/flowInstances", "cancel",
        body={"flowInstId": flow_inst_id}, flow_inst_id=flow_inst_id,
    )  # fmt: skip


def get_flow_instance(flow_inst_id: str) -> Operation:
    """Describe "Get Flow Instance".

    :param flow_inst_id: the instance id.
    """
    flow_inst_id = require_flow_inst_id(flow_inst_id)
    return _batch(
        "get_flow_instance", "GET", "/flowInstances", "get",
        query=(("flowInstId", flow_inst_id),), flow_inst_id=flow_inst_id,
    )  # fmt: skip


def search_flow_instances(search: Mapping[str, Any], pagination: Mapping[str, Any]) -> Operation:
    """Describe one page of "List Flow Instances".

    :param search: the search fields (see :func:`search_fields`).
    :param pagination: ``pageNo``, ``pageSize`` and optional ``sorters``.
    """
    body = {**search, "pagination": dict(pagination)}
    return _batch("list_flow_instances", "POST", "/flowInstances", "search", body=body)


def trigger_flow(
    flow_id: int | str,
    trigger_time: int | datetime | None,
    parameters: Mapping[str, Any] | str | None,
    start_task_id: str | None,
) -> Operation:
    """Describe "Trigger Flow", "Update And Trigger Flow" or "Trigger Flow From Task".

    :param flow_id: the workflow id.
    :param trigger_time: the logical trigger time; None for now.
    :param parameters: run with these parameters (Update And Trigger).
    :param start_task_id: start from this task (Trigger From Task).
    """
    body: dict[str, Any] = {
        "flowId": to_flow_id(flow_id),
        "triggerTime": int(time.time() * 1000) if trigger_time is None else to_epoch_ms(trigger_time),
    }
    action = "trigger"
    if parameters is not None and start_task_id is not None:
        raise EnOSValidationError(
            "parameters and start_task_id cannot be combined: EnOS triggers with new parameters "
            "or from a task, not both"
        )
    if parameters is not None:
        if not isinstance(parameters, (str, Mapping)):
            raise EnOSValidationError(f"parameters must be a dict or a JSON string, got {parameters!r}")
        action, body["parameters"] = "updateAndTrigger", parameters
    if start_task_id is not None:
        action, body["taskId"] = "triggerFromTask", require_text(start_task_id, "start_task_id")
    return _batch("trigger_flow", "POST", "/flows", action, body=body, idempotent=False)


def get_flow(flow_id: int | str) -> Operation:
    """Describe "Get Flow".

    :param flow_id: the workflow id.
    """
    return _batch("get_flow", "GET", "/flows", "get", query=(("flowId", str(to_flow_id(flow_id))),))


GET_CURRENT_TIME = _batch("get_server_time", "GET", "/time", "getCurrentTime")


def search_fields(status: object, expression: str | None, filters: Mapping[str, Any]) -> dict[str, Any]:
    """Return the search body fields of "List Flow Instances", checked; ``sorters`` stays in them.

    :param status: one status or several (codes, names or members), or None for any.
    :param expression: fuzzy match on instance id or flow name, or None.
    :param filters: more fields by their keyword names (see ``LIST_FILTERS``).
    """
    search: dict[str, Any] = {}
    if status is not None:
        search["status"] = ",".join(str(int(s)) for s in _statuses(status))
    if expression is not None:
        search["expression"] = require_text(expression, "expression")
    for name, value in filters.items():
        if name not in LIST_FILTERS:
            allowed = ", ".join(sorted(LIST_FILTERS))
            raise EnOSValidationError(
                f"list_flow_instances got an unknown filter {name!r}; expected {allowed}"
            )
        key = LIST_FILTERS[name]
        search[key] = to_epoch_ms(value, name) if key.endswith("TriggerTime") else value
    return search


def prepare(
    op: Operation,
    settings: EnOSConnectionSettings,
    identity: tuple[str, str] | None,
    token: str | None,
    timeout: float,
) -> PreparedRequest:
    """Serialise and sign a call: these exact bytes are both signed and sent.

    :param op: the call.
    :param settings: the connection (gateway URL and keys).
    :param identity: ``(userId, orgId)`` of a Batch call; None for the token request.
    :param token: the access token of an authenticated call.
    :param timeout: seconds the transport waits for the reply.
    """
    body = op.body
    query: list[tuple[str, str]] = []
    if op.action is not None and identity is not None:
        query = [("action", op.action), ("userId", identity[0]), ("orgId", identity[1]), *op.query]
    payload = None if body is None else json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode()
    url = settings.gateway_url + op.path + ("?" + urlencode(query, quote_via=quote) if query else "")
    headers = {"Content-Type": JSON_CONTENT_TYPE} if payload is not None else {}
    if token is not None:
        timestamp = int(time.time() * 1000)
        headers["apim-accesstoken"] = token
        headers["apim-timestamp"] = str(timestamp)
        headers["apim-signature"] = request_signature(token, query, payload, timestamp, settings.secret_key)
    return PreparedRequest(
        op.method, url, payload, headers, timeout, op.name, op.flow_inst_id, settings.gateway_url
    )


def to_flow_id(value: object) -> int:
    """Return a workflow id as the integer EnOS expects.

    :param value: an int, or a string of digits.
    """
    if isinstance(value, str) and value.strip().isdigit():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise EnOSValidationError(f"flow_id must be a non-negative integer (the workflow id), got {value!r}")
    return value


def to_epoch_ms(value: object, field: str = "trigger_time") -> int:
    """Return a time as milliseconds since the epoch.

    :param value: ms since the epoch (int) or a timezone-aware datetime.
    :param field: the parameter name to show in the error.
    """
    if isinstance(value, datetime):
        if value.tzinfo is None:
            raise EnOSValidationError(f"{field} must be timezone-aware, got naive {value.isoformat()}")
        return int(value.timestamp() * 1000)
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise EnOSValidationError(f"{field} must be ms since the epoch or an aware datetime, got {value!r}")
    return value


def _statuses(value: object) -> list[EnOSFlowInstanceStatus]:
    statuses = status_list(value, "status")
    if not statuses:
        raise EnOSValidationError("status must name at least one status, got an empty list")
    return statuses
