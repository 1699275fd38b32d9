"""Check what a user gives, and turn it into the values EnOS documents, before any request is sent.

Every input fact is here once: ids, durations, counts, times, workflow ids, statuses, scheduling
types, and workflow parameters. Errors name the field and what was expected.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterable, Mapping
from datetime import datetime, timedelta
from typing import overload

from airflow_enos_provider._protocol.codes import EnOSFlowType
from airflow_enos_provider._protocol.contract import PARAMETER_FIELDS
from airflow_enos_provider._status import MAX_FAILURE_LOG_BYTES, status_codes, status_list
from airflow_enos_provider.exceptions import EnOSValidationError
from airflow_enos_provider.status import EnOSFlowInstanceStatus

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
    """Return a positive, finite duration in seconds, or None.

    :param value: seconds or a timedelta, or None.
    :param field: the parameter name to show in the error.
    """
    if value is None:
        return None
    number = value.total_seconds() if isinstance(value, timedelta) else value
    if isinstance(number, bool) or not isinstance(number, (int, float)) or not 0 < number < math.inf:
        raise EnOSValidationError(f"{field} must be a positive number of seconds, got {value!r}")
    return float(number)


def check_failure_log_bytes(value: object) -> int:
    """Check ``failure_log_bytes``: bytes of each failed task's log to show, 0 for none.

    :param value: the parameter's value.
    """
    return require_int(value, "failure_log_bytes", 0, MAX_FAILURE_LOG_BYTES)


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


def flow_types(value: object) -> tuple[int, ...] | None:
    """Return scheduling types as sorted codes, or None when none were given.

    :param value: a code, a name (``"periodic"``) or several of them.
    """
    if value is None:
        return None
    values = value if isinstance(value, (list, tuple, set, frozenset)) else [value]
    types = [_flow_type(item) for item in values]
    if not types:
        raise EnOSValidationError("type must name at least one scheduling type, got an empty list")
    return tuple(sorted(set(types)))


def _flow_type(item: object) -> int:
    try:
        if isinstance(item, str) and not item.strip().isdigit():
            return int(EnOSFlowType[item.strip().upper()])
        return int(EnOSFlowType(int(item)))  # type: ignore[call-overload]
    except (TypeError, ValueError, KeyError):
        known = ", ".join(f"{t.value} ({t.name.lower()})" for t in EnOSFlowType)
        raise EnOSValidationError(f"type: {item!r} is not a scheduling type; expected {known}") from None


def statuses(value: object) -> str:
    """Return statuses as the comma-separated codes a search takes.

    :param value: one status or several (codes, names or members).
    """
    return status_codes(_statuses(value))


def to_parameters(value: object) -> list[dict[str, str]]:
    """Return workflow parameters as EnOS takes them: a list of ``{"key", "value"}`` objects.

    Accepts the mapping a user writes (``{"REPLACE": "ddee"}``), the documented list itself, or a
    JSON string of either. Values are sent as text: strings as they are, booleans as ``true`` /
    ``false``, numbers as their digits, lists and objects as compact JSON.

    :param value: the parameters.
    """
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except (ValueError, RecursionError):
            raise EnOSValidationError(
                "parameters: a string must be JSON (an object of key: value, or a list of "
                f'{{"key": ..., "value": ...}} objects), got {value!r:.80}'
            ) from None
    if isinstance(value, Mapping):
        pairs = list(value.items())
    elif isinstance(value, (list, tuple)):
        pairs = [_pair(item, index) for index, item in enumerate(value)]
    else:
        raise EnOSValidationError(
            "parameters must be a mapping, a list of {'key': ..., 'value': ...} objects or a JSON string "
            f"of one, got {type(value).__name__}"
        )
    return [{"key": _key(key), "value": _as_text(val, key)} for key, val in pairs]


def _pair(item: object, index: int) -> tuple[object, object]:
    if not isinstance(item, Mapping) or set(item) != PARAMETER_FIELDS:
        raise EnOSValidationError(
            f'parameters[{index}]: expected {{"key": ..., "value": ...}}, got {item!r:.80}'
        )
    return item["key"], item["value"]


def _key(key: object) -> str:
    if not isinstance(key, str) or not key.strip():
        raise EnOSValidationError(f"parameters: every key must be a non-empty string, got {key!r:.80}")
    _utf8(key, "parameters: key")
    return key


def _as_text(value: object, key: object) -> str:
    where = f"parameters[{key!r:.80}]"
    _check_json(value, where)
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return str(value)
    if value is None:
        raise EnOSValidationError(
            f"{where}: expected text, a number, a boolean, a list or an object, got None"
        )
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


_MAX_PARAMETER_DEPTH = 32


def _check_json(value: object, where: str) -> None:
    """Check that a parameter value is JSON: scalars, lists and string-keyed objects, UTF-8 text."""
    stack: list[tuple[object, str, int]] = [(value, where, 0)]
    while stack:
        item, at, depth = stack.pop()
        if depth > _MAX_PARAMETER_DEPTH:
            raise EnOSValidationError(f"{at}: nested deeper than {_MAX_PARAMETER_DEPTH} levels")
        if item is None or isinstance(item, (bool, int)):
            continue
        if isinstance(item, float):
            if not math.isfinite(item):
                raise EnOSValidationError(f"{at}: {item!r} is not a JSON number")
        elif isinstance(item, str):
            _utf8(item, at)
        elif isinstance(item, (list, tuple)):
            stack.extend((child, f"{at}[{index}]", depth + 1) for index, child in enumerate(item))
        elif isinstance(item, Mapping):
            for name, child in item.items():
                if not isinstance(name, str):
                    raise EnOSValidationError(
                        f"{at}: object keys must be strings, got {type(name).__name__} {name!r:.60}"
                    )
                _utf8(name, f"{at} key")
                stack.append((child, f"{at}[{name!r:.60}]", depth + 1))
        else:
            raise EnOSValidationError(
                f"{at}: expected text, a number, a boolean, a list or an object with string keys, "
                f"got {type(item).__name__} {item!r:.80}"
            )


def _utf8(text: str, where: str) -> None:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as err:
        raise EnOSValidationError(
            f"{where}: text that cannot be encoded as UTF-8 (a lone surrogate at character {err.start})"
        ) from None
