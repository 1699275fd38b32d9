"""Switchable faults for the emulator: what a flaky network or gateway does to a client.

A fault applies to one operation (``"flowInstances.cancel"``, ``"token.get"``, ...) or to every
one (``"*"``), for the next ``times`` calls or for a ``fraction`` of calls (drawn from a seeded
generator, so a run is repeatable).
"""

from __future__ import annotations

import random
import threading
from collections import Counter
from dataclasses import dataclass

# kind -> (does the backend process the request?, what the client sees)
KINDS: dict[str, tuple[bool, str]] = {
    "latency": (True, "the reply arrives `seconds` late"),
    "reset_before": (False, "the connection is reset before the request is processed"),
    "reset_after": (True, "the request is processed, then the connection is reset without a reply"),
    "http_429": (False, "HTTP 429 with Retry-After `retry_after`"),
    "http_5xx": (False, "HTTP `status` (500, 502, 503 or 504) with a gateway message"),
    "html": (False, "an HTML error page with HTTP `status`"),
    "truncated": (True, "the request is processed; the JSON reply is cut in half"),
    "non_json": (False, "HTTP 200 with a body that is not JSON"),
    "slow_body": (True, "the request is processed; the body comes `seconds` after the headers"),
    "unknown_code": (False, "an envelope with a code EnOS does not document (99999)"),
    "token_expired": (True, "every token expires just before this call"),
}


@dataclass
class Fault:
    """One injected fault.

    :param kind: one of :data:`KINDS`.
    :param operation: the operation it applies to, or ``"*"``.
    :param times: how many more calls it hits; None for no limit (with ``fraction``).
    :param fraction: the share of calls it hits (0 to 1); None for every call.
    :param seconds: for ``latency`` and ``slow_body``.
    :param status: for ``http_5xx`` and ``html``.
    :param retry_after: the ``Retry-After`` header value for ``http_429`` (seconds or HTTP date).
    """

    kind: str
    operation: str = "*"
    times: int | None = 1
    fraction: float | None = None
    seconds: float = 0.0
    status: int = 503
    retry_after: str = "1"

    @property
    def processed(self) -> bool:
        """Say whether the backend handles the request despite the fault."""
        return KINDS[self.kind][0]


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
        if fault.kind not in KINDS:
            raise ValueError(f"unknown fault {fault.kind!r}; expected one of {', '.join(KINDS)}")
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
                self.hits[(fault.kind, operation or "")] += 1
                return fault
        return None
