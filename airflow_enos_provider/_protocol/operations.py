"""The EnOS operations the provider calls, each described once, and the signed requests built from them."""

from __future__ import annotations

import json
import time
from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any
from urllib.parse import quote, urlencode

from airflow_enos_provider import __version__
from airflow_enos_provider._connection import EnOSConnectionSettings
from airflow_enos_provider._protocol.contract import CONTRACTS, Contract
from airflow_enos_provider._protocol.signing import request_signature, token_encryption
from airflow_enos_provider._validation import (
    require_flow_inst_id,
    require_instance_id,
    require_int,
    require_text,
    to_epoch_ms,
    to_flow_id,
    to_parameters,
)
from airflow_enos_provider.exceptions import EnOSValidationError

JSON_CONTENT_TYPE = "application/json;charset=UTF-8"
USER_AGENT = f"airflow-enos-provider/{__version__}"


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


def _from_contract(contract: Contract, **fields: Any) -> Operation:
    return Operation(
        contract.name,
        contract.method,
        contract.path,
        contract.action,
        idempotent=contract.idempotent,
        **fields,
    )


_CONTRACTS = {(c.path.rsplit("/", 1)[-1], c.action): c for c in CONTRACTS}
GET_ACCESS_TOKEN = _from_contract(_CONTRACTS["get", None])
GET_CURRENT_TIME = _from_contract(_CONTRACTS["time", "getCurrentTime"])
GET_TIME_ZONE = _from_contract(_CONTRACTS["time", "getTimeZone"])
# Pages in creation order, so instances created during a search only add pages at the end.
STABLE_ORDER = ({"field": "createTime", "order": "ASC"},)


def token_request(settings: EnOSConnectionSettings, timestamp: int) -> Operation:
    """Return "Get Access Token" for one attempt: it is signed in its body.

    :param settings: the connection's access key and secret key.
    :param timestamp: ms since the epoch, never used before (the token service refuses a replay).
    """
    encryption = token_encryption(settings.access_key, timestamp, settings.secret_key)
    body = {"appKey": settings.access_key, "timestamp": timestamp, "encryption": encryption}
    return replace(GET_ACCESS_TOKEN, body=body)


def cancel_flow_instance(flow_inst_id: str) -> Operation:
    """Describe "Cancel Flow Instance".

    :param flow_inst_id: the instance id.
    """
    flow_inst_id = require_flow_inst_id(flow_inst_id)
    contract = _CONTRACTS["flowInstances", "cancel"]
    return _from_contract(contract, body={"flowInstId": flow_inst_id}, flow_inst_id=flow_inst_id)


def get_flow_instance(flow_inst_id: str) -> Operation:
    """Describe "Get Flow Instance".

    :param flow_inst_id: the instance id.
    """
    flow_inst_id = require_flow_inst_id(flow_inst_id)
    contract = _CONTRACTS["flowInstances", "get"]
    return _from_contract(contract, query=(("flowInstId", flow_inst_id),), flow_inst_id=flow_inst_id)


def search_flow_instances(
    body: Mapping[str, Any], page_no: int, page_size: int, sorters: Any = None
) -> Operation:
    """Describe one page of "List Flow Instances".

    :param body: every mandatory search field (:meth:`~.search.Search.body`).
    :param page_no: the page, from 1.
    :param page_size: instances per page.
    :param sorters: the caller's ``sorters``; None for creation time, ascending.
    """
    pagination = {
        "pageNo": page_no,
        "pageSize": page_size,
        "sorters": sorters or [dict(s) for s in STABLE_ORDER],
    }
    return _from_contract(_CONTRACTS["flowInstances", "search"], body={**body, "pagination": pagination})


def trigger_flow(
    flow_id: int | str,
    trigger_time: int | datetime | None,
    parameters: object | None,
    start_task_id: str | int | None,
) -> Operation:
    """Describe "Trigger Flow", "Update And Trigger Flow" or "Trigger Flow From Task".

    :param flow_id: the workflow id.
    :param trigger_time: the logical trigger time; None for now.
    :param parameters: run with these parameters (Update And Trigger; see
        :func:`~airflow_enos_provider._validation.to_parameters`).
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
        action, body["parameters"] = "updateAndTrigger", to_parameters(parameters)
    if start_task_id is not None:
        # The page types taskId Integer (and its sample sends 108580); ids are digits in every sample.
        plain = isinstance(start_task_id, int) and not isinstance(start_task_id, bool)
        task_id = str(start_task_id) if plain else require_text(start_task_id, "start_task_id")
        if not task_id.isdigit():
            raise EnOSValidationError(
                f"start_task_id must be a task id, digits (Trigger Flow From Task types taskId "
                f"Integer), got {start_task_id!r}"
            )
        action, body["taskId"] = "triggerFromTask", int(task_id)
    return _from_contract(_CONTRACTS["flows", action], body=body)


def get_flow(flow_id: int | str) -> Operation:
    """Describe "Get Flow".

    :param flow_id: the workflow id.
    """
    return _from_contract(_CONTRACTS["flows", "get"], query=(("flowId", str(to_flow_id(flow_id))),))


def set_flow_schedule(flow_id: int | str, active: bool) -> Operation:
    """Describe "Enable Flow" (``active``) or "Disable Flow": start or stop a workflow's schedule.

    :param flow_id: the workflow id.
    :param active: True to start the schedule (enable), False to stop it (disable).
    """
    action = "enable" if active else "disable"
    return _from_contract(_CONTRACTS["flows", action], body={"flowId": to_flow_id(flow_id)})


def search_flows(expression: str, page_no: int, page_size: int) -> Operation:
    """Describe one page of "Search Flow" (any flow of the OU), in creation order.

    :param expression: fuzzy match on flow id and flow name; ``""`` for every flow.
    :param page_no: the page, from 1.
    :param page_size: flows per page.
    """
    pagination = {"pageNo": page_no, "pageSize": page_size, "sorters": [dict(s) for s in STABLE_ORDER]}
    body = {"expression": expression, "pagination": pagination}
    return _from_contract(_CONTRACTS["flows", "search"], body=body)


def get_my_flows(expression: str | None) -> Operation:
    """Describe "Get My Flow" (the user's flows; the page documents no paging).

    :param expression: fuzzy match on flow id and flow name; None for every flow.
    """
    query = () if expression is None else (("expression", require_text(expression, "expression")),)
    return _from_contract(_CONTRACTS["flows", "getMyFlow"], query=query)


def get_task_instance(task_inst_id: str) -> Operation:
    """Describe "Get Task Instance".

    :param task_inst_id: the task instance id, e.g. ``104452-201907261239``.
    """
    task_inst_id = require_instance_id(task_inst_id, "task_inst_id")
    return _from_contract(_CONTRACTS["taskInstances", "get"], query=(("taskInstId", task_inst_id),))


def get_task_instance_log(task_inst_id: str, max_length: int | None) -> Operation:
    """Describe "Get Task Instance Log".

    :param task_inst_id: the task instance id.
    :param max_length: the most characters of log to return; None for EnOS's default (about 1 MiB).
    """
    query = [("taskInstId", require_instance_id(task_inst_id, "task_inst_id"))]
    if max_length is not None:
        query.append(("maxLength", str(require_int(max_length, "max_length", 1, 2**31 - 1))))
    return _from_contract(_CONTRACTS["taskInstances", "getLog"], query=tuple(query))


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


@dataclass(frozen=True)
class Started:
    """A trigger's outcome: the new instance and the trigger time it got.

    :param flow_inst_id: the instance id EnOS returned.
    :param trigger_ms: the trigger time sent with the accepted trigger.
    :param requested_ms: the trigger time asked for (differs only when EnOS refused that minute).
    """

    flow_inst_id: str
    trigger_ms: int
    requested_ms: int
