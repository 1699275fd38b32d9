"""Turn one request into one reply: parse its query and body, call the backend, render the envelope.

The token service answers in its v2.0 envelope (``status``, ``msg``, ``business``, ``data``), Batch
Processing v2.1 in its own (``code``, ``msg``, ``data``, ``requestId``); ``enos-api.md`` section 2.
Business errors come with HTTP 200 (whether EnOS uses another status is undocumented).
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from email.message import Message
from typing import Any, NamedTuple

from airflow_enos_provider._protocol.codes import EnOSCode
from airflow_enos_provider._protocol.contract import Contract, Kind, contract_for, loosely
from airflow_enos_provider.emulator.auth import check_access
from airflow_enos_provider.emulator.errors import ApiError, invalid_parameter
from airflow_enos_provider.emulator.models import parameters_string
from airflow_enos_provider.emulator.state import EmulatorState, SearchQuery, TriggerRequest
from airflow_enos_provider.emulator.tokens import TokenRequest
from airflow_enos_provider.status import EnOSFlowInstanceStatus as Status

__all__ = [
    "DEFAULT_PAGE_SIZE",
    "FLOW_SORT_FIELDS",
    "MAX_PAGE_SIZE",
    "NOT_FOUND",
    "SORT_FIELDS",
    "TOKEN_BUSINESS",
    "UNPARSEABLE",
    "BatchHandler",
    "Reply",
    "Request",
    "Responder",
    "TokenHandler",
    "batch_envelope",
    "batch_route",
    "cancel",
    "current_time",
    "disable_flow",
    "enable_flow",
    "get_flow",
    "get_instance",
    "get_task_instance",
    "get_task_log",
    "my_flows",
    "not_found",
    "search",
    "search_flows",
    "time_zone",
    "token_get",
    "token_refresh",
    "token_route",
    "trigger",
    "trigger_from_task",
    "update_and_trigger",
]

_logger = logging.getLogger("airflow_enos_provider.emulator")

TOKEN_BUSINESS = "apim-token-service"
# The largest page and the page a search without ``pagination`` gets are undocumented.
MAX_PAGE_SIZE = 1000
DEFAULT_PAGE_SIZE = 10
SORT_FIELDS: tuple[str, ...] = ("createTime", "updateTime", "startTime", "triggerTime", "endTime")
#: Search Flow's sorters (search_flow.md: "Supported fields are createTime, updateTime, and startTime").
FLOW_SORT_FIELDS: tuple[str, ...] = ("createTime", "updateTime", "startTime")
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
    """The HTTP status and the JSON payload to send, and what the request broke of its contract."""

    status: int
    payload: dict[str, Any]
    violations: tuple[str, ...] = ()


Responder = Callable[[EmulatorState, Request], Reply]
# A Batch operation: (tenant, the verified caller's user id, the request) -> the envelope's data.
BatchHandler = Callable[[EmulatorState, str, Request], Any]
# A token operation: (tenant, the checked request) -> the envelope's data.
TokenHandler = Callable[[EmulatorState, TokenRequest], dict[str, int | str]]


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
        try:
            data = handler(state, _token_request(request))
        except ApiError as exc:
            return Reply(200, _token_envelope(exc.code, exc.msg, None), exc.violations)
        return Reply(200, _token_envelope(EnOSCode.SUCCESS, "SUCCESS", data))

    return respond


def token_get(state: EmulatorState, request: TokenRequest) -> dict[str, int | str]:
    """Serve ``token/get``."""
    return state.token_get(request)


def token_refresh(state: EmulatorState, request: TokenRequest) -> dict[str, int | str]:
    """Serve ``token/refresh`` (the ``token/get`` fields plus ``accessToken``)."""
    return state.token_refresh(request)


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
            _check_contract(request, action)  # a POST body that is not a JSON object included
            data = handler(state, user_id, request)
        except ApiError as exc:
            return Reply(200, batch_envelope(exc.code, exc.msg, request_id), exc.violations)
        return Reply(
            200, {"code": EnOSCode.SUCCESS.value, "msg": "OK", "data": data, "requestId": request_id}
        )

    return respond


# ----------------------------------------------------------------------- Batch operations
# Each handler runs after _check_contract, so its fields are present and of their documented type.


def cancel(state: EmulatorState, user_id: str, request: Request) -> str:
    """Serve "Cancel Flow Instance"; its ``data`` is ``""``."""
    state.cancel(user_id, request.parsed["flowInstId"])
    return ""


def get_instance(state: EmulatorState, user_id: str, request: Request) -> dict[str, Any]:
    """Serve "Get Flow Instance" (``flowInstId`` in the query)."""
    return state.get_instance(user_id, request.query["flowInstId"])


def search(state: EmulatorState, user_id: str, request: Request) -> dict[str, Any]:
    """Serve "List Flow Instances"."""
    return state.search(user_id, _search_query(request.parsed))


def trigger(state: EmulatorState, user_id: str, request: Request) -> dict[str, Any]:
    """Serve "Trigger Flow"."""
    return state.trigger(user_id, _trigger_request(request.parsed))


def update_and_trigger(state: EmulatorState, user_id: str, request: Request) -> dict[str, Any]:
    """Serve "Update And Trigger Flow": the instance carries the given key/value list."""
    parameters = parameters_string(loosely(Kind.KEY_VALUES, request.parsed["parameters"]))
    return state.trigger(user_id, _trigger_request(request.parsed, parameters=parameters))


def trigger_from_task(state: EmulatorState, user_id: str, request: Request) -> dict[str, Any]:
    """Serve "Trigger Flow From Task" (``taskId``: a task id of the flow's graph, an Integer on its page)."""
    task_id = str(loosely(Kind.INTEGER, request.parsed["taskId"]))
    return state.trigger(user_id, _trigger_request(request.parsed, task_id=task_id))


def get_flow(state: EmulatorState, user_id: str, request: Request) -> dict[str, Any]:
    """Serve "Get Flow" (``flowId`` in the query)."""
    return state.get_flow(user_id, int(request.query["flowId"]))


def disable_flow(state: EmulatorState, user_id: str, request: Request) -> str:
    """Serve "Disable Flow" (disable_flow.md); its ``data`` is ``""``."""
    state.set_flow_schedule(user_id, loosely(Kind.INTEGER, request.parsed["flowId"]), active=False)
    return ""


def enable_flow(state: EmulatorState, user_id: str, request: Request) -> str:
    """Serve "Enable Flow" (enable_flow.md); its ``data`` is ``""``."""
    state.set_flow_schedule(user_id, loosely(Kind.INTEGER, request.parsed["flowId"]), active=True)
    return ""


def search_flows(state: EmulatorState, user_id: str, request: Request) -> list[dict[str, Any]]:
    """Serve "Search Flow" (search_flow.md; sorters on createTime, updateTime or startTime)."""
    page_no, page_size, sorters = _pagination(
        request.parsed.get("pagination"), FLOW_SORT_FIELDS, default=(("createTime", False),)
    )
    descending = bool(sorters) and sorters[0][1]
    return state.search_flows(user_id, request.parsed.get("expression") or "", page_no, page_size, descending)


def my_flows(state: EmulatorState, user_id: str, request: Request) -> list[dict[str, Any]]:
    """Serve "Get My Flow" (get_my_flow.md; ``expression`` in the query, no paging)."""
    return state.my_flows(user_id, request.query.get("expression") or "")


def time_zone(state: EmulatorState, user_id: str, request: Request) -> dict[str, str]:
    """Serve "Get Timezone" (get_time_zone.md)."""
    return state.get_time_zone()


def current_time(state: EmulatorState, user_id: str, request: Request) -> int:
    """Serve "Get Current Time": the clock in epoch ms."""
    return state.now_ms()


def get_task_instance(state: EmulatorState, user_id: str, request: Request) -> dict[str, Any]:
    """Serve "Get Task Instance" (``taskInstId`` in the query)."""
    return state.get_task_instance(user_id, request.query["taskInstId"])


def get_task_log(state: EmulatorState, user_id: str, request: Request) -> dict[str, str]:
    """Serve "Get Task Instance Log" (``taskInstId``, optional ``maxLength`` in the query)."""
    raw = request.query.get("maxLength")
    max_length = int(raw) if raw else None
    if max_length is not None and max_length < 0:
        raise invalid_parameter("Invalid parameter: maxLength")
    return state.get_task_log(user_id, request.query["taskInstId"], max_length)


# ----------------------------------------------------------------------- checks and parsing


def _check_contract(request: Request, action: str) -> None:
    # Every operation's documented fields (_protocol/contract.py, which names each one's page). A
    # body field refused is "Invalid request body." (enos-api.md section 2), a query field "Invalid
    # parameter"; either way the log and the recorded request name every field.
    contract = contract_for(request.method, request.path, action)
    if contract is None:
        return
    violations = tuple(contract.violations(request.query, request.parsed, loose=True))
    if not violations:
        return
    _log_violations(contract, violations)
    # contract.py starts each line with where the field is ("body ..." or "query ...").
    if any(v.startswith("body") for v in violations):
        raise invalid_parameter("Invalid request body.", violations)
    raise invalid_parameter("Invalid parameter: " + "; ".join(violations), violations)


def _log_violations(contract: Contract, violations: tuple[str, ...]) -> None:
    _logger.warning(
        "%s refused, against %s: %s", contract.title, contract.page or "its contract", "; ".join(violations)
    )


def _token_envelope(status: EnOSCode, msg: str, data: dict[str, int | str] | None) -> dict[str, Any]:
    return {"status": status.value, "msg": msg, "business": TOKEN_BUSINESS, "data": data}


def _token_request(request: Request) -> TokenRequest:
    # "Get Access Token" / "Refresh Access Token" (enos-api.md section 1a): an empty or missing
    # field is "parameter empty" (1202); a body that is not JSON, or a field of another type, is
    # "invalid parameter" (1004).
    contract = contract_for(request.method, request.path, None)
    if contract is None:  # every token route has a contract (tests/emulator/api/test_contract.py checks)
        raise ApiError(EnOSCode.TOKEN_INTERNAL, "Internal error")
    body = request.parsed if request.body else {}
    if not isinstance(body, dict):
        violations: tuple[str, ...] = ("body: a JSON object is expected",)
        _log_violations(contract, violations)
        raise ApiError(EnOSCode.TOKEN_INVALID_PARAMETER, "Invalid parameter", violations)
    empty = [field for field in contract.body if body.get(field.name) in (None, "")]
    if empty:
        violations = tuple(f"body {f.name}: mandatory {f.kind.value} is empty" for f in empty)
        _log_violations(contract, violations)
        names = ", ".join(f.name for f in empty)
        raise ApiError(EnOSCode.TOKEN_PARAMETER_EMPTY, f"Parameter {names} is empty", violations)
    violations = tuple(contract.violations({}, body, loose=True))
    if violations:
        _log_violations(contract, violations)
        raise ApiError(
            EnOSCode.TOKEN_INVALID_PARAMETER, "Invalid parameter: " + "; ".join(violations), violations
        )
    access_token = body.get("accessToken")
    timestamp = loosely(Kind.LONG, body["timestamp"])
    return TokenRequest(body["appKey"], timestamp, body["encryption"].lower(), access_token)


def _user_and_org(query: Mapping[str, str]) -> tuple[str, str]:
    # Every v2.1 call takes userId and orgId (enos-api.md section 3).
    user_id = query.get("userId") or ""
    org_id = query.get("orgId") or ""
    if not user_id or not org_id:
        raise invalid_parameter("Invalid parameter: userId/orgId is required")
    return user_id, org_id


def _search_query(body: Mapping[str, Any]) -> SearchQuery:
    try:
        # "status" is a String of comma-separated codes (list_flow_instances.md's table); the sample
        # shapes contract.loosely takes are read as the table's.
        status = loosely(Kind.STATUS_LIST, body["status"])
        statuses = frozenset(Status(int(code)) for code in status.split(","))
    except ValueError:
        raise invalid_parameter("Invalid parameter: status") from None
    page_no, page_size, sorters = _pagination(body.get("pagination"))
    return SearchQuery(
        loosely(Kind.INTEGER, body["type"]),
        body["expression"],
        body["owner"],
        loosely(Kind.LONG, body["fromTriggerTime"]),
        loosely(Kind.LONG, body["toTriggerTime"]),
        statuses,
        page_no,
        page_size,
        sorters,
    )


def _trigger_request(
    body: Mapping[str, Any], *, parameters: str | None = None, task_id: str | None = None
) -> TriggerRequest:
    flow_id, trigger_ms = loosely(Kind.INTEGER, body["flowId"]), loosely(Kind.LONG, body["triggerTime"])
    return TriggerRequest(flow_id, trigger_ms, parameters, task_id)


def _pagination(
    value: Mapping[str, Any] | None,
    fields: tuple[str, ...] = SORT_FIELDS,
    default: tuple[tuple[str, bool], ...] = (("triggerTime", True),),
) -> tuple[int, int, tuple[tuple[str, bool], ...]]:
    # The Pagination Struct (search_flow.md); its pageNo >= 1 and pageSize > 0 are contract checks.
    # ``default``: the order of a search that names no sorter, which the pages leave undocumented
    # (instances: newest trigger first; flows: in creation order, "ASC (default)").
    if value is None:
        return 1, DEFAULT_PAGE_SIZE, default
    if value["pageSize"] > MAX_PAGE_SIZE:  # undocumented: the pages ask only pageSize > 0
        raise invalid_parameter(f"Invalid parameter: pageSize must be 1 to {MAX_PAGE_SIZE}")
    if not value.get("sorters"):
        return value["pageNo"], value["pageSize"], default
    sorters: list[tuple[str, bool]] = []
    for sorter in value["sorters"]:
        if sorter["field"] not in fields:
            # list_flow_instances.md's error table (search_flow.md names its own three fields).
            raise invalid_parameter("The sorters field parameter is invalid")
        # search_flow.md: "ASC (default) = ascending order".
        order = sorter.get("order", "ASC")
        if order not in ("ASC", "DESC"):
            raise invalid_parameter("Invalid parameter: sorters order")
        sorters.append((sorter["field"], order == "DESC"))
    return value["pageNo"], value["pageSize"], tuple(sorters)
