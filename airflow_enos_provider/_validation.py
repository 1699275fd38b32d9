"""Check user-given values before any request is sent; errors name the field and what was expected."""

from __future__ import annotations

import re
from collections.abc import Iterable
from datetime import timedelta
from typing import overload

from airflow_enos_provider._status import MAX_FAILURE_LOG_BYTES
from airflow_enos_provider.exceptions import EnOSValidationError

#: The shape of flow-instance and task-instance ids (``2438-201908081020``, ``104452-201907261239``):
#: ASCII digits (the flow or task id), a dash, ASCII digits (the trigger time's suffix, 10 to 14
#: digits in the vendor's samples), 64 characters at most.
INSTANCE_ID = re.compile(r"(?=.{3,64}\Z)[0-9]+-[0-9]+\Z", re.ASCII)


def require_text(value: object, field: str) -> str:
    """Return ``value`` if it is a non-empty string without surrounding whitespace.

    :param value: the value to check.
    :param field: the parameter name to show in the error.
    :raises EnOSValidationError: otherwise.
    """
    if not isinstance(value, str):
        raise EnOSValidationError(f"{field} must be a string, got {type(value).__name__} {value!r}")
    if not value:
        raise EnOSValidationError(f"{field} must be a non-empty string, got ''")
    if value != value.strip():
        raise EnOSValidationError(f"{field} must not start or end with whitespace, got {value!r}")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise EnOSValidationError(f"{field} must be valid Unicode text, got {value[:60]!r}") from None
    return value


def require_int(value: object, field: str, low: int, high: int) -> int:
    """Return ``value`` if it is an integer from ``low`` to ``high``, or raise naming ``field``.

    :param value: the value to check.
    :param field: the parameter name to show in the error.
    :param low: the smallest value allowed.
    :param high: the largest value allowed.
    """
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise EnOSValidationError(f"{field} must be an integer from {low} to {high}, got {value!r}")
    return value


def require_flow_inst_id(value: object, field: str = "flow_inst_id") -> str:
    """Return a valid flow-instance id, or raise naming ``field``.

    Also catches the two mistakes templating makes: an upstream task that pushed nothing renders
    as ``"None"``, and a list renders as its text unless the DAG renders native objects.

    :param value: the id to check.
    :param field: the parameter name to show in the error.
    """
    text = require_text(value, field)
    if text == "None":
        raise EnOSValidationError(
            f"{field} rendered to 'None': the upstream task pushed no flow-instance id to XCom"
        )
    if text.startswith("[") and text.endswith("]"):
        raise EnOSValidationError(
            f"{field} looks like a list rendered as text ({text[:60]!r}): pass a list, or set "
            "render_template_as_native_obj=True on the DAG so the template renders a real list"
        )
    return require_instance_id(text, field)


def require_instance_id(value: object, field: str) -> str:
    """Return a flow- or task-instance id in the documented shape (:data:`INSTANCE_ID`), or raise.

    :param value: the id to check.
    :param field: the parameter name to show in the error.
    """
    text = require_text(value, field)
    if not INSTANCE_ID.match(text):
        raise EnOSValidationError(
            f"{field} must be an EnOS instance id: digits, a dash and digits, such as "
            f"2438-201908081020 (at most 64 characters), got {text[:80]!r}"
        )
    return text


def require_flow_inst_ids(value: object, field: str = "flow_inst_id") -> list[str]:
    """Return one or more flow-instance ids as a list without duplicates, keeping their order.

    :param value: one id or an iterable of ids.
    :param field: the parameter name to show in the error.
    """
    if isinstance(value, str):
        return [require_flow_inst_id(value, field)]
    if not isinstance(value, Iterable) or isinstance(value, (bytes, dict)):
        raise EnOSValidationError(
            f"{field} must be a flow-instance id or a list of ids, got {type(value).__name__} {value!r}"
        )
    ids = [require_flow_inst_id(item, f"{field}[{i}]") for i, item in enumerate(value)]
    if not ids:
        raise EnOSValidationError(f"{field} must name at least one flow instance, got an empty list")
    return list(dict.fromkeys(ids))


@overload
def seconds(value: float | timedelta, field: str) -> float: ...
@overload
def seconds(value: float | timedelta | None, field: str) -> float | None: ...
def seconds(value: float | timedelta | None, field: str) -> float | None:
    """Return a positive duration in seconds, or None.

    :param value: seconds or a timedelta, or None.
    :param field: the parameter name to show in the error.
    """
    if value is None:
        return None
    number = value.total_seconds() if isinstance(value, timedelta) else value
    if isinstance(number, bool) or not isinstance(number, (int, float)) or not number > 0:
        raise EnOSValidationError(
            f"{field} must be a positive number of seconds or a timedelta, got {value!r}"
        )
    return float(number)


def check_failure_log_bytes(value: object) -> int:
    """Check ``failure_log_bytes``: bytes of each failed task's log to show, 0 for none.

    :param value: the parameter's value.
    """
    return require_int(value, "failure_log_bytes", 0, MAX_FAILURE_LOG_BYTES)
