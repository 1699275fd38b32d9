"""The emulator's request log: what was received, on which connection, and what verified.

Tests read it to check what a client sent (never a header value, never a live token), and hook
callbacks onto it to act between two calls of a client.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

__all__ = ["RecordedRequest", "RequestRecorder", "masked_body"]


@dataclass(frozen=True)
class RecordedRequest:
    """Describe one HTTP request the emulator received (never any header value).

    :param method: the HTTP method.
    :param path: the URL path without the query.
    :param query: the decoded query parameters (first value of each name).
    :param operation: e.g. ``"token.get"`` or ``"flowInstances.cancel"``; None for unknown routes.
    :param body: the JSON body when it parsed to an object, else None (``accessToken`` is masked).
    :param code: the EnOS code in the reply (``status`` or ``code``), None when the reply had none.
    :param http_status: the HTTP status of the reply.
    :param connection_id: a number unique to the TCP connection the request came on (from 1).
    :param peer_port: the client's source port of that connection.
    :param fault: the injected fault that hit this request, if any.
    :param violations: what the request broke of its documented contract, one line per field
        (``_protocol/contract.py``); empty when it kept it.
    """

    method: str
    path: str
    query: dict[str, str]
    operation: str | None
    body: dict[str, Any] | None
    code: int | None
    http_status: int
    connection_id: int
    peer_port: int
    fault: str | None = None
    violations: tuple[str, ...] = ()


def masked_body(parsed: object) -> dict[str, Any] | None:
    """Return a parsed body as the log keeps it: objects only, with any access token hidden.

    :param parsed: the parsed JSON body, or anything else.
    """
    if not isinstance(parsed, dict):
        return None
    body = dict(parsed)
    if "accessToken" in body:
        # A refresh body carries a live token; the log must never hold one.
        body["accessToken"] = "***"
    return body


class RequestRecorder:
    """Keep the request log, the after-callbacks, verified signatures and the connection count.

    :param lock: the tenant's lock, so a test reading the log sees it consistent with the tenant.
    """

    def __init__(self, lock: threading.RLock) -> None:
        self._lock = lock
        self._requests: list[RecordedRequest] = []
        self._after: dict[str, list[Callable[[], None]]] = {}
        self._signatures: list[str] = []
        self._connections = 0

    @property
    def requests(self) -> list[RecordedRequest]:
        """Every HTTP request received, in order (a copy)."""
        with self._lock:
            return list(self._requests)

    def record(self, request: RecordedRequest) -> None:
        """Append a request to the log, then run the callbacks waiting for its operation."""
        with self._lock:
            self._requests.append(request)
            callbacks = self._after.pop(request.operation or "", [])
        for callback in callbacks:
            callback()

    def after(self, operation: str, callback: Callable[[], None]) -> None:
        """Run ``callback`` once, when the next ``operation`` is recorded."""
        with self._lock:
            self._after.setdefault(operation, []).append(callback)

    def clear(self) -> None:
        """Forget every recorded request (the connection count is kept)."""
        with self._lock:
            self._requests.clear()

    def count(self, operation: str) -> int:
        """Return how many recorded requests were for an operation."""
        with self._lock:
            return sum(1 for r in self._requests if r.operation == operation)

    def note_signature(self, signature: str) -> None:
        """Remember a signature that verified."""
        with self._lock:
            self._signatures.append(signature)

    def seen_signatures(self) -> list[str]:
        """Return every signature that verified so far."""
        with self._lock:
            return list(self._signatures)

    @property
    def connections_opened(self) -> int:
        """The number of TCP connections accepted so far."""
        with self._lock:
            return self._connections

    def register_connection(self) -> int:
        """Count a newly accepted TCP connection and return its id (from 1)."""
        with self._lock:
            self._connections += 1
            return self._connections
