"""Turn an EnOS HTTP reply into its ``data``, or into a typed error a user can act on."""

from __future__ import annotations

import json
import re
import time
from collections.abc import Mapping
from email.utils import parsedate_to_datetime
from typing import Any

from airflow_enos_provider.exceptions import EnOSAPIError, EnOSAuthenticationError
from airflow_enos_provider.protocol.codes import AUTH_CODES
from airflow_enos_provider.protocol.codes import EnOSCode as C

# What a user can do about each refusal; messages from EnOS alone rarely say.
HINTS: dict[int, str] = {
    C.TOKEN_DUPLICATED: "The token request reused a timestamp (replay); it is retried with a fresh one",
    C.TOKEN_APP_UNKNOWN: "The access key does not exist: check the connection's login",
    C.TOKEN_ENCRYPTION_INVALID: "The token request signature is not valid: check that the connection's "
    "password is the secret key of this access key",
    C.TOKEN_INVALID_PARAMETER: "A token request parameter is invalid",
    C.TOKEN_EXPIRED: "The access token expired",
    C.BP_USER_MISMATCH: "The user id does not exist or does not belong to the org id: check user_id and "
    "org_id (operator arguments or the connection's extras)",
    C.BP_INVALID_PARAMETER: "EnOS rejected a parameter, for instance an unknown flow-instance id",
    C.BP_NO_PRIVILEGE: "The user does not own this flow instance (or has no privilege on it): cancel it as "
    "its owner",
    C.BP_DEPENDED_ON: "The workflow is depended on by another or has no task",
    C.BP_LOCKED: "The account or the workflow is locked: unlock it in the EnOS console",
    C.BP_INTERNAL: "EnOS had an internal error",
}
# 62102 "invalid parameter" names no field: say which input of this call to check.
INVALID_PARAMETER_HINTS: dict[str, str] = {
    "trigger_flow": "EnOS rejected a parameter: check the flow id (and the taskId or parameters sent)",
    "get_flow": "EnOS rejected a parameter: check the flow id",
    "list_flow_instances": "EnOS rejected the search: check the request body (type, status, trigger times)",
    "get_task_instance": "EnOS rejected a parameter: check the task-instance id",
    "get_task_instance_log": "EnOS rejected a parameter: check the task-instance id (or it has no log)",
}
_EXCERPT = 200


def parse_reply(
    *,
    http_status: int,
    body: bytes,
    operation: str,
    flow_inst_id: str | None = None,
    headers: Mapping[str, str] | None = None,
) -> Any:
    """Return the ``data`` of a success envelope, or raise an error that says what EnOS refused.

    The error is an :class:`~airflow_enos_provider.exceptions.EnOSAPIError`.

    Accepts the v2.1 envelope (``code``) and the v2.0 / token-service one (``status``); a gateway
    error with only ``{"message": ...}``; and non-JSON bodies such as HTML error pages. Errors carry
    the ``Retry-After`` and ``Date`` headers, for retries and clock-skew reports.

    :param http_status: the reply's HTTP status.
    :param body: the reply body bytes.
    :param operation: the call's name, for the error.
    :param flow_inst_id: the flow instance the call was about, for the error.
    :param headers: the reply's headers (case-insensitive mapping).
    """
    try:
        return _parse(http_status, body, operation, flow_inst_id)
    except EnOSAPIError as err:
        if headers is not None:
            err.retry_after = parse_retry_after(headers.get("Retry-After"))
            err.server_time = _http_date(headers.get("Date"))
        raise


def parse_retry_after(value: str | None) -> float | None:
    """Return the seconds a ``Retry-After`` header asks for (delta-seconds or an HTTP date).

    :param value: the header value, or None.
    """
    if not value:
        return None
    text = value.strip()
    if text.isdigit():
        return float(text)
    when = _http_date(text)
    return None if when is None else max(0.0, when - time.time())


def _http_date(value: str | None) -> float | None:
    if not value:
        return None
    try:
        return parsedate_to_datetime(value).timestamp()
    except (TypeError, ValueError, IndexError):
        return None


def _parse(http_status: int, body: bytes, operation: str, flow_inst_id: str | None) -> Any:
    payload = _json_or_none(body)
    if not isinstance(payload, dict):
        kind = "an empty reply" if not body.strip() else "a reply that is not a JSON object"
        raise _error(f"{kind}: {_excerpt(body)}", operation, None, http_status, None, flow_inst_id)
    code = payload.get("code", payload.get("status"))
    message = str(payload.get("msg") or payload.get("message") or "").strip()
    request_id = payload.get("requestId")
    if code is None:
        raise _error(
            message or f"a JSON reply without an EnOS code: {_excerpt(body)}",
            operation,
            None,
            http_status,
            request_id,
            flow_inst_id,
        )
    try:
        code = int(code)
    except (TypeError, ValueError):
        raise _error(
            f"an EnOS code that is not a number: {_excerpt(body)}",
            operation,
            None,
            http_status,
            request_id,
            flow_inst_id,
        ) from None
    if code == 0 and http_status < 400:
        return payload.get("data")
    raise _error(message or "(no message)", operation, code, http_status, request_id, flow_inst_id)


def _error(
    message: str,
    operation: str,
    code: int | None,
    http_status: int,
    request_id: Any,
    flow_inst_id: str | None,
) -> EnOSAPIError:
    auth = code in AUTH_CODES or (code is None and http_status in (401, 403))
    hint = HINTS.get(code) if code is not None else None
    if code == C.BP_INVALID_PARAMETER:
        hint = INVALID_PARAMETER_HINTS.get(operation, hint)
    if code is None and http_status == 401:
        hint = "The gateway refused the credentials: check the access key and secret key"
    elif code is None and http_status == 403:
        hint = "The gateway refused this client: check that its IP address is allowed for the application"
    elif code is None and http_status == 429:
        hint = "The gateway is rate limiting this application"
    cls = EnOSAuthenticationError if auth else EnOSAPIError
    return cls(
        message,
        operation=operation,
        code=code,
        http_status=http_status,
        request_id=str(request_id) if request_id else None,
        flow_inst_id=flow_inst_id,
        hint=hint,
    )


def _json_or_none(body: bytes) -> Any:
    try:
        return json.loads(body)
    except (ValueError, UnicodeDecodeError):
        return None


def _excerpt(body: bytes) -> str:
    text = re.sub(r"<[^>]+>", " ", body.decode("utf-8", "replace"))  # an HTML page says more without tags
    text = " ".join(text.split())
    return repr(text[:_EXCERPT] + ("..." if len(text) > _EXCERPT else "")) if text else "(no body)"
