"""Turn an EnOS HTTP reply into its ``data``, or into a typed error a user can act on."""

from __future__ import annotations

import json
import math
import re
import time
from collections.abc import Mapping
from email.utils import parsedate_to_datetime
from typing import Any
from urllib.parse import SplitResult, urlsplit

from airflow_enos_provider._protocol.codes import AUTH_CODES
from airflow_enos_provider._protocol.codes import EnOSCode as C
from airflow_enos_provider._protocol.operations import Operation
from airflow_enos_provider.exceptions import EnOSAPIError, EnOSAuthenticationError

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
    "disable_flow": "EnOS rejected a parameter: check the flow id",
    "enable_flow": "EnOS rejected a parameter: check the flow id",
    "list_flow_instances": "EnOS rejected the search: check the request body (type, status, trigger times)",
    "get_task_instance": "EnOS rejected a parameter: check the task-instance id",
    "get_task_instance_log": "EnOS rejected a parameter: check the task-instance id (or it has no log)",
}
_EXCERPT = 200
#: The largest reply body read and parsed; a transport reads one byte more, then stops.
MAX_REPLY_BYTES = 32 * 1024 * 1024
#: The deepest JSON nesting accepted (EnOS replies nest about 4 levels; ``graph`` is a string).
MAX_DEPTH = 64
_CODE_LIMIT = 10**18
_CODE_TEXT = re.compile(r"-?[0-9]{1,18}")


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

    Total: any bytes give the data or an ``EnOSAPIError``. A 3xx is an error naming the redirect's
    origin (redirects are never followed); success is a 2xx with ``code`` 0 (see :func:`enos_code`);
    the body is held to :func:`decode_json`'s limits.

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
        if 300 <= http_status < 400:
            raise _redirect(http_status, headers, operation, flow_inst_id)
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
    if text.isascii() and text.isdigit():
        return float(text)
    when = _http_date(text)
    return None if when is None else max(0.0, when - time.time())


def _http_date(value: str | None) -> float | None:
    if not value:
        return None
    try:
        return parsedate_to_datetime(value).timestamp()
    except (TypeError, ValueError, IndexError, OverflowError):
        return None


def _parse(http_status: int, body: bytes, operation: str, flow_inst_id: str | None) -> Any:
    def fail(message: str, code: int | None = None, request_id: Any = None) -> EnOSAPIError:
        return _error(message, operation, code, http_status, request_id, flow_inst_id)

    try:
        payload = decode_json(body)
    except MalformedReply as err:
        raise fail(f"{err}: {_excerpt(body)}") from None
    if not isinstance(payload, dict):
        raise fail(f"a reply that is not a JSON object: {_excerpt(body)}")
    raw_code = payload["code"] if "code" in payload else payload.get("status")
    message = _text(payload.get("msg") or payload.get("message") or "")
    request_id = payload.get("requestId")
    if not isinstance(request_id, (str, int)) or isinstance(request_id, bool):
        request_id = None
    if raw_code is None:
        raise fail(message or f"a JSON reply without an EnOS code: {_excerpt(body)}", None, request_id)
    code = enos_code(raw_code)
    if code is None:
        raise fail(f"an EnOS code that is not an integer: {_excerpt(body)}", None, request_id)
    if code == 0 and 200 <= http_status < 300:
        return payload.get("data")
    raise fail(message or "(no message)", code, request_id)


def enos_code(value: object) -> int | None:
    """Return an envelope's ``code``/``status`` as an integer, or None when it is not one.

    An integer or its decimal digit string (``0``, ``"0"``, ``"62102"``); booleans, floats and
    anything else are not codes, so they never count as success.

    :param value: the field's value.
    """
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value if abs(value) < _CODE_LIMIT else None
    if isinstance(value, str) and _CODE_TEXT.fullmatch(value):
        return int(value)
    return None


class MalformedReply(ValueError):
    """A reply body that is not JSON within the parser's limits (the message says which)."""


def decode_json(body: bytes) -> Any:
    """Return the JSON value of a reply body, within the limits every reply is held to.

    At most :data:`MAX_REPLY_BYTES` bytes, nested at most :data:`MAX_DEPTH` deep, finite numbers
    only (``1e400``, ``NaN`` and ``Infinity`` are refused), integers of at most 4300 digits.

    :param body: the bytes.
    :raises MalformedReply: naming the limit or the defect.
    """
    if len(body) > MAX_REPLY_BYTES:
        raise MalformedReply(f"a reply larger than {MAX_REPLY_BYTES} bytes")
    if not body.strip():
        raise MalformedReply("an empty reply")
    try:
        value = json.loads(body, parse_float=_finite, parse_constant=_no_constant)
    except RecursionError:
        raise MalformedReply(f"JSON nested deeper than {MAX_DEPTH} levels") from None
    except _NumberOutOfRange as err:
        raise MalformedReply(str(err)) from None
    except (ValueError, UnicodeDecodeError):
        raise MalformedReply("a reply that is not JSON") from None
    if _depth_exceeds(value, MAX_DEPTH):
        raise MalformedReply(f"JSON nested deeper than {MAX_DEPTH} levels")
    return value


class _NumberOutOfRange(ValueError):
    pass


def _finite(text: str) -> float:
    number = float(text)
    if not math.isfinite(number):
        raise _NumberOutOfRange(f"a number out of range ({text[:40]})")
    return number


def _no_constant(text: str) -> Any:
    raise _NumberOutOfRange(f"a number out of range ({text})")


def _depth_exceeds(value: Any, limit: int) -> bool:
    stack = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict):
            children: Any = item.values()
        elif isinstance(item, list):
            children = item
        else:
            continue
        if depth > limit:
            return True
        stack.extend((child, depth + 1) for child in children if isinstance(child, (dict, list)))
    return False


def _text(value: object) -> str:
    # msg is text in every documented reply; anything else is shown as JSON (clipped by the error).
    if isinstance(value, str):
        return value.strip()
    return json.dumps(value, ensure_ascii=False, default=str)[: 4 * 1024]


def _redirect(
    http_status: int, headers: Mapping[str, str] | None, operation: str, flow_inst_id: str | None
) -> EnOSAPIError:
    location = (headers or {}).get("Location") or ""
    parts = urlsplit(location.strip())
    if parts.scheme and parts.hostname:
        port = f":{parts.port}" if _port(parts) is not None else ""
        where = f"to {parts.scheme}://{parts.hostname}{port}"
    elif location:
        where = "within the gateway"
    else:
        where = "without a Location"
    return EnOSAPIError(
        f"HTTP {http_status} redirect {where}: not followed (the request carries the credentials; "
        "an outcome counts only from the gateway's own reply)",
        operation=operation,
        http_status=http_status,
        flow_inst_id=flow_inst_id,
        hint="Set the connection's host to the gateway address that answers without a redirect "
        "(check http:// against https://)",
    )


def _port(parts: SplitResult) -> int | None:
    try:
        return parts.port
    except ValueError:
        return None


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
    if code == C.BP_NO_PRIVILEGE and operation in ("disable_flow", "enable_flow"):
        # disable_flow.md / enable_flow.md: "The user must be the owner of the workflow".
        hint = "The user does not own this workflow: only its owner can stop or start its schedule"
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


def _excerpt(body: bytes) -> str:
    head = body[: 64 * 1024]  # enough for the excerpt, however big the reply
    text = re.sub(r"<[^>]+>", " ", head.decode("utf-8", "replace"))  # an HTML page says more without tags
    text = " ".join(text.split())
    return repr(text[:_EXCERPT] + ("..." if len(text) > _EXCERPT else "")) if text else "(no body)"


def expect_dict(data: Any, op: Operation) -> dict[str, Any]:
    """Return a reply's ``data`` when it is an object, else raise naming the call.

    :param data: the reply's ``data``.
    :param op: the call.
    """
    if not isinstance(data, Mapping):
        raise EnOSAPIError(
            f"expected an object in data, got {data!r:.200}", operation=op.name, flow_inst_id=op.flow_inst_id
        )
    return dict(data)
