"""Switchable faults for the emulator: what a flaky network or gateway does to a client.

A fault applies to one operation (``"flowInstances.cancel"``, ``"token.get"``, ...) or to every
one (``"*"``), for the next ``times`` calls or for a ``fraction`` of calls (drawn from a seeded
generator, so a run is repeatable).
"""

from __future__ import annotations

import random
import threading
import uuid
from collections import Counter
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

__all__ = ["UNDOCUMENTED_CODE", "Fault", "FaultKind", "FaultPlan", "FaultReply", "fault_reply"]

#: A code no EnOS page documents, for clients' handling of the unexpected.
UNDOCUMENTED_CODE = 99999


class FaultKind(StrEnum):
    """The kinds of fault; the value is the name ``inject`` and the request log use."""

    # What the client sees, for each kind:
    LATENCY = "latency"  # the reply arrives `seconds` late
    RESET_BEFORE = "reset_before"  # the connection is reset before the request is processed
    RESET_AFTER = "reset_after"  # the request is processed, then the connection is reset, no reply
    HTTP_429 = "http_429"  # HTTP 429 with Retry-After `retry_after`
    HTTP_5XX = "http_5xx"  # HTTP `status` (500, 502, 503 or 504) with a gateway message
    HTML = "html"  # an HTML error page with HTTP `status`
    TRUNCATED = "truncated"  # the request is processed; the JSON reply is cut in half
    NON_JSON = "non_json"  # HTTP 200 with a body that is not JSON
    SLOW_BODY = "slow_body"  # the request is processed; the body comes `seconds` after the headers
    UNKNOWN_CODE = "unknown_code"  # an envelope with UNDOCUMENTED_CODE
    TOKEN_EXPIRED = "token_expired"  # every token expires just before this call

    @classmethod
    def parse(cls, kind: str) -> FaultKind:
        """Map a fault name to its kind at the border.

        :param kind: a name such as ``"reset_after"``.
        :raises ValueError: when no kind has that name.
        """
        try:
            return cls(kind)
        except ValueError:
            raise ValueError(f"unknown fault {kind!r}; expected one of {', '.join(cls)}") from None

    @property
    def processed(self) -> bool:
        """Say whether the backend handles the request despite the fault."""
        return self in _PROCESSED


_PROCESSED = frozenset(
    {
        FaultKind.LATENCY,
        FaultKind.RESET_AFTER,
        FaultKind.TRUNCATED,
        FaultKind.SLOW_BODY,
        FaultKind.TOKEN_EXPIRED,
    }
)


@dataclass
class Fault:
    """One injected fault.

    :param kind: a :class:`FaultKind` (or its name).
    :param operation: the operation it applies to, or ``"*"``.
    :param times: how many more calls it hits; None for no limit (with ``fraction``).
    :param fraction: the share of calls it hits (0 to 1); None for every call.
    :param seconds: for ``latency`` and ``slow_body``.
    :param status: for ``http_5xx`` and ``html``.
    :param retry_after: the ``Retry-After`` header value for ``http_429`` (seconds or HTTP date).
    """

    kind: FaultKind
    operation: str = "*"
    times: int | None = 1
    fraction: float | None = None
    seconds: float = 0.0
    status: int = 503
    retry_after: str = "1"

    def __post_init__(self) -> None:
        self.kind = FaultKind.parse(self.kind)

    @property
    def processed(self) -> bool:
        """Say whether the backend handles the request despite the fault."""
        return self.kind.processed


@dataclass(frozen=True)
class FaultReply:
    """What the gateway sends instead of the backend's answer, for a fault that skips the backend.

    :param status: the HTTP status.
    :param payload: the JSON reply (ignored when ``raw`` is set).
    :param raw: a body that is not JSON, sent as it is.
    :param headers: extra response headers.
    """

    status: int
    payload: dict[str, Any] = field(default_factory=dict)
    raw: bytes | None = None
    headers: dict[str, str] = field(default_factory=dict)


def fault_reply(fault: Fault) -> FaultReply:
    """Return what an unprocessed fault answers (``reset_before`` answers nothing: not here).

    :param fault: a fault whose kind is not :attr:`FaultKind.processed`.
    """
    kind = fault.kind
    if kind is FaultKind.HTTP_429:
        return FaultReply(429, {"message": "Too Many Requests"}, headers={"Retry-After": fault.retry_after})
    if kind is FaultKind.HTTP_5XX:
        return FaultReply(fault.status, {"message": f"Gateway error {fault.status}"})
    if kind is FaultKind.HTML:
        title = f"{fault.status} Bad Gateway"
        page = f"<html><head><title>{title}</title></head><body><h1>{title}</h1></body></html>"
        return FaultReply(fault.status, raw=page.encode())
    if kind is FaultKind.NON_JSON:
        return FaultReply(200, raw=b"OK")
    if kind is FaultKind.UNKNOWN_CODE:
        unknown = {"code": UNDOCUMENTED_CODE, "msg": "Unknown error", "data": None}
        return FaultReply(200, {**unknown, "requestId": uuid.uuid4().hex})
    raise ValueError(f"fault {kind} has no reply of its own")


class FaultPlan:
    """The faults in force, taken one call at a time (thread-safe)."""

    def __init__(self, seed: int = 0) -> None:
        self._lock = threading.Lock()
        self._faults: list[Fault] = []
        self._random = random.Random(seed)
        self.hits: Counter[tuple[str, str]] = Counter()

    def add(self, fault: Fault) -> Fault:
        """Put a fault in force.

        :param fault: the fault.
        """
        if fault.fraction is not None and not 0 <= fault.fraction <= 1:
            raise ValueError(f"fraction must be from 0 to 1, got {fault.fraction!r}")
        with self._lock:
            self._faults.append(fault)
        return fault

    def clear(self) -> None:
        """Remove every fault."""
        with self._lock:
            self._faults.clear()

    def take(self, operation: str | None) -> Fault | None:
        """Return the fault that hits this call, if any, and count it.

        :param operation: the call's operation name.
        """
        with self._lock:
            for fault in self._faults:
                if fault.operation not in ("*", operation):
                    continue
                if fault.fraction is not None and self._random.random() >= fault.fraction:
                    continue
                if fault.times is not None:
                    fault.times -= 1
                    if fault.times <= 0:
                        self._faults.remove(fault)
                self.hits[(fault.kind.value, operation or "")] += 1
                return fault
        return None
