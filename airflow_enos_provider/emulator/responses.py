"""Turn one request into one reply: parse its query and body, call the backend, render the envelope.

The token service answers in its v2.0 envelope (``status``, ``msg``, ``business``, ``data``), Batch
Processing v2.1 in its own (``code``, ``msg``, ``data``, ``requestId``); ``enos-api.md`` section 2.
Business errors come with HTTP 200 (whether EnOS uses another status is undocumented).
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from email.message import Message
from typing import Any, NamedTuple

from airflow_enos_provider.emulator.auth import check_access
from airflow_enos_provider.emulator.errors import ApiError, invalid_parameter
from airflow_enos_provider.emulator.models import parameters_string
from airflow_enos_provider.emulator.state import EmulatorState, SearchQuery, TriggerRequest
from airflow_enos_provider.emulator.tokens import TokenRequest
from airflow_enos_provider.protocol.codes import EnOSCode
from airflow_enos_provider.status import EnOSFlowInstanceStatus as Status

TOKEN_BUSINESS = "apim-token-service"
MAX_PAGE_SIZE = 1000
DEFAULT_PAGE_SIZE = 10
SORT_FIELDS: tuple[str, ...] = ("createTime", "updateTime", "startTime", "triggerTime", "endTime")
NOT_FOUND: dict[str, Any] = {"message": "Not Found"}
# Stands for a body that is not JSON, so it differs from both "no body" and any JSON value.
UNPARSEABLE = object()


@dataclass(frozen=True)
class Request:
    """One HTTP request as the server read it.

    :param query: the decoded query, each name's first value.
    :param body: the exact body bytes (``b""`` when there was none).
    :param parsed: the JSON body; None without a body, :data:`UNPARSEABLE` when it is not JSON.
    """

    method: str
    path: str
    query: dict[str, str]
    body: bytes
    parsed: Any
    headers: Message[str, str]


class Reply(NamedTuple):
    """The HTTP status and the JSON payload to send."""

    status: int
    payload: dict[str, Any]


Responder = Callable[[EmulatorState, Request], Reply]
# A Batch operation: (tenant, the verified caller's user id, the request) -> the envelope's data.
BatchHandler = Callable[[EmulatorState, str, Request], Any]
# A token operation: (tenant, the parsed JSON body) -> the envelope's data.
TokenHandler = Callable[[EmulatorState, object], dict[str, int | str]]


def batch_envelope(code: EnOSCode, msg: str, request_id: str | None = None) -> dict[str, Any]:
    """Return a Batch v2.1 error envelope.

    :param code: the business code.
    :param msg: the message.
    :param request_id: the call's ``requestId``; a fresh one when None.
    """
    return {"code": code.value, "msg": msg, "data": None, "requestId": request_id or uuid.uuid4().hex}


def not_found(state: EmulatorState, request: Request) -> Reply:
    """Answer a path and method no route serves, as the gateway does."""
    return Reply(404, NOT_FOUND)


def token_route(handler: TokenHandler) -> Responder:
    """Return the responder of a token-service operation."""

    def respond(state: EmulatorState, request: Request) -> Reply:
        # An empty body is "parameters empty" (1202); a body that is not JSON is "invalid" (1004).
        body = request.parsed if request.body else {}
        try:
            data = handler(state, body)
        except ApiError as exc:
            return Reply(200, _token_envelope(exc.code, exc.msg, None))
        return Reply(200, _token_envelope(EnOSCode.SUCCESS, "SUCCESS", data))

    return respond


def token_get(state: EmulatorState, body: object) -> dict[str, int | str]:
    """Serve ``token/get``."""
    return state.token_get(_token_request(body, ()))


def token_refresh(state: EmulatorState, body: object) -> dict[str, int | str]:
    """Serve ``token/refresh`` (the ``token/get`` fields plus ``accessToken``)."""
    return state.token_refresh(_token_request(body, ("accessToken",)))


def batch_route(handler: BatchHandler | None) -> Responder:
    """Return the responder of a Batch resource's action; None refuses the action.

    EnOS's reply to an action a resource does not have is undocumented: the emulator answers
    62102 after the token, signature and user checks, like any other invalid parameter.
    """

    def respond(state: EmulatorState, request: Request) -> Reply:
        failure = check_access(state, request.headers, request.query, request.body)
        if failure is not None:
            return Reply(401, failure)
        request_id = uuid.uuid4().hex
        try:
            action = request.query.get("action") or ""
            if not action:
                raise invalid_parameter("Invalid parameter: action is required")
            user_id = state.check_user(*_user_and_org(request.query))
            if handler is None:
                raise invalid_parameter(f"Invalid parameter: unsupported action {action!r}")
            if request.method == "POST" and not isinstance(request.parsed, dict):
                raise invalid_parameter("Invalid request body.")
            data = handler(state, user_id, request)
        except ApiError as exc:
            return Reply(200, batch_envelope(exc.code, exc.msg, request_id))
        return Reply(
            200, {"code": EnOSCode.SUCCESS.value, "msg": "OK", "data": data, "requestId": request_id}
        )

    return respond


# ----------------------------------------------------------------------- Batch operations


def cancel(state: EmulatorState, user_id: str, request: Request) -> str:
    """Serve "Cancel Flow Instance"; its ``data`` is ``""``."""
    state.cancel(user_id, _required_str(request.parsed, "flowInstId"))
    return ""


def get_instance(state: EmulatorState, user_id: str, request: Request) -> dict[str, Any]:
    """Serve "Get Flow Instance" (``flowInstId`` in the query)."""
    return state.get_instance(user_id, _required_str(request.query, "flowInstId"))


def search(state: EmulatorState, user_id: str, request: Request) -> dict[str, Any]:
    """Serve "List Flow Instances"."""
    return state.search(user_id, _search_query(request.parsed))


def trigger(state: EmulatorState, user_id: str, request: Request) -> dict[str, Any]:
    """Serve "Trigger Flow"."""
    return state.trigger(user_id, _trigger_request(request.parsed))


def update_and_trigger(state: EmulatorState, user_id: str, request: Request) -> dict[str, Any]:
    """Serve "Update And Trigger Flow" (``parameters`` required)."""
    return state.trigger(user_id, _trigger_request(request.parsed, with_parameters=True))


def trigger_from_task(state: EmulatorState, user_id: str, request: Request) -> dict[str, Any]:
    """Serve "Trigger Flow From Task" (``taskId`` required)."""
    return state.trigger(user_id, _trigger_request(request.parsed, from_task=True))


def get_flow(state: EmulatorState, user_id: str, request: Request) -> dict[str, Any]:
    """Serve "Get Flow" (``flowId`` in the query)."""
    raw = request.query.get("flowId")
    if not raw:
        raise invalid_parameter("Invalid parameter: flowId is required")
    return state.get_flow(user_id, _int_value(raw, "flowId"))


def current_time(state: EmulatorState, user_id: str, request: Request) -> int:
    """Serve "Get Current Time": the clock in epoch ms."""
    return state.now_ms()


# ----------------------------------------------------------------------- parsing


def _token_envelope(status: EnOSCode, msg: str, data: dict[str, int | str] | None) -> dict[str, Any]:
    return {"status": status.value, "msg": msg, "business": TOKEN_BUSINESS, "data": data}


def _token_request(body: object, extra: tuple[str, ...]) -> TokenRequest:
    # "Get Access Token" / "Refresh Access Token": every field is required.
    if not isinstance(body, dict):
        raise ApiError(EnOSCode.TOKEN_INVALID_PARAMETER, "Invalid parameter")
    for name in ("appKey", "timestamp", "encryption", *extra):
        if body.get(name) in (None, ""):
            raise ApiError(EnOSCode.TOKEN_PARAMETER_EMPTY, f"Parameter {name} is empty")
    timestamp = body["timestamp"]
    if isinstance(timestamp, bool) or not isinstance(timestamp, (int, float, str)):
        raise ApiError(EnOSCode.TOKEN_INVALID_PARAMETER, "Invalid parameter: timestamp")
    try:
        timestamp_ms = int(timestamp)
    except ValueError:
        raise ApiError(EnOSCode.TOKEN_INVALID_PARAMETER, "Invalid parameter: timestamp") from None
    access_token = str(body["accessToken"]) if extra else None
    return TokenRequest(str(body["appKey"]), timestamp_ms, str(body["encryption"]).lower(), access_token)


def _user_and_org(query: Mapping[str, str]) -> tuple[str, str]:
    # Every v2.1 call takes userId and orgId (enos-api.md section 3).
    user_id = query.get("userId") or ""
    org_id = query.get("orgId") or ""
    if not user_id or not org_id:
        raise invalid_parameter("Invalid parameter: userId/orgId is required")
    return user_id, org_id


def _int_value(value: object, name: str) -> int:
    # JSON clients send numbers, query strings send digits; both are accepted, booleans are not.
    if isinstance(value, bool):
        raise invalid_parameter(f"Invalid parameter: {name}")
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, str) and value.strip().lstrip("-").isdigit():
        return int(value.strip())
    raise invalid_parameter(f"Invalid parameter: {name}")


def _optional_int(body: Mapping[str, Any], name: str) -> int | None:
    value = body.get(name)
    if value is None or value == "":
        return None
    return _int_value(value, name)


def _required_str(source: Mapping[str, Any], name: str) -> str:
    value = source.get(name)
    if value is None or value == "":
        raise invalid_parameter(f"Invalid parameter: {name} is required")
    if not isinstance(value, str):
        raise invalid_parameter(f"Invalid parameter: {name}")
    return value


def _optional_str(body: Mapping[str, Any], name: str) -> str | None:
    value = body.get(name) or None
    if value is not None and not isinstance(value, str):
        raise invalid_parameter(f"Invalid parameter: {name}")
    return value


def _search_query(body: Mapping[str, Any]) -> SearchQuery:
    # The page makes every filter mandatory; the emulator reads a missing one as "no filter".
    type_filter = _optional_int(body, "type")
    from_ms = _optional_int(body, "fromTriggerTime")
    to_ms = _optional_int(body, "toTriggerTime")
    owner = _optional_str(body, "owner")
    expression = _optional_str(body, "expression")
    statuses = _status_filter(body.get("status"))
    page_no, page_size, sorters = _pagination(body.get("pagination"))
    return SearchQuery(type_filter, from_ms, to_ms, owner, expression, statuses, page_no, page_size, sorters)


def _trigger_request(
    body: Mapping[str, Any], *, with_parameters: bool = False, from_task: bool = False
) -> TriggerRequest:
    flow_id = _optional_int(body, "flowId")
    if flow_id is None:
        raise invalid_parameter("Invalid parameter: flowId is required")
    trigger_ms = _optional_int(body, "triggerTime")
    parameters = "{}"
    if with_parameters:
        if body.get("parameters") is None:
            raise invalid_parameter("Invalid parameter: parameters is required")
        try:
            parameters = parameters_string(body["parameters"])
        except ValueError:
            raise invalid_parameter("Invalid parameter: parameters") from None
    task_id = _required_str(body, "taskId") if from_task else None
    return TriggerRequest(flow_id, trigger_ms, parameters, task_id)


def _status_filter(value: object) -> frozenset[Status] | None:
    # "status" is a comma-separated string of codes on the page; lists and names are accepted too.
    if value is None or value == "" or value == []:
        return None
    parts: list[Any]
    if isinstance(value, str):
        parts = [p.strip() for p in value.split(",") if p.strip()]
    elif isinstance(value, list):
        parts = list(value)
    else:
        parts = [value]
    try:
        return frozenset(Status.parse(p) for p in parts)
    except ValueError:
        raise invalid_parameter("Invalid parameter: status") from None


def _pagination(value: object) -> tuple[int, int, tuple[tuple[str, bool], ...]]:
    if value is None:
        value = {}
    if not isinstance(value, dict):
        raise invalid_parameter("Invalid parameter: pagination")
    page_no = _optional_int(value, "pageNo")
    page_size = _optional_int(value, "pageSize")
    page_no = 1 if page_no is None else page_no
    page_size = DEFAULT_PAGE_SIZE if page_size is None else page_size
    # v2.1 counts pages from 1 (the older v2.0 pages from 0).
    if page_no < 1:
        raise invalid_parameter("Invalid parameter: pageNo must be >= 1")
    if not 1 <= page_size <= MAX_PAGE_SIZE:
        raise invalid_parameter(f"Invalid parameter: pageSize must be 1 to {MAX_PAGE_SIZE}")
    raw_sorters = value.get("sorters") or [{"field": "triggerTime", "order": "DESC"}]
    if not isinstance(raw_sorters, list):
        raise invalid_parameter("Invalid parameter: sorters")
    sorters: list[tuple[str, bool]] = []
    for sorter in raw_sorters:
        if not isinstance(sorter, dict) or sorter.get("field") not in SORT_FIELDS:
            raise invalid_parameter("Invalid parameter: sorters")
        order = str(sorter.get("order") or "DESC").upper()
        if order not in ("ASC", "DESC"):
            raise invalid_parameter("Invalid parameter: sorters")
        sorters.append((sorter["field"], order == "DESC"))
    return page_no, page_size, tuple(sorters)
