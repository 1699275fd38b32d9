"""Decide whether a failed call is worth repeating, and how long to wait first."""

from __future__ import annotations

import random
import threading
from dataclasses import dataclass

from airflow_enos_provider.exceptions import EnOSAPIError, EnOSConnectionError, EnOSError
from airflow_enos_provider.protocol.codes import EnOSCode


def retry_reason(err: EnOSError, idempotent: bool) -> str | None:
    """Say why a failure is worth another attempt, or None when repeating is useless or unsafe.

    The one definition of a transient failure: the hook's retries and the trigger's tolerance of
    failed polls both use it. Never repeated: business refusals (62101-62105 and other codes),
    credential and signature errors, 413, TLS failures; and, for calls that start something, any
    failure after which the request may have reached EnOS.

    :param err: the failure.
    :param idempotent: whether repeating the call is safe if it may have reached EnOS.
    """
    if isinstance(err, EnOSConnectionError):
        if err.tls:
            return None
        if not err.maybe_sent:
            return "could not connect"
        return "no complete reply" if idempotent else None
    if not isinstance(err, EnOSAPIError):
        return None
    if err.code == EnOSCode.TOKEN_DUPLICATED:
        return "token request replayed; a fresh timestamp is used"
    if err.http_status in (429, 503):
        return f"HTTP {err.http_status}"  # refused before any processing
    if not idempotent:
        return None
    if err.code in (EnOSCode.BP_INTERNAL, EnOSCode.TOKEN_INTERNAL):
        return f"EnOS internal error {err.code}"
    if err.http_status in (500, 502, 504):
        return f"HTTP {err.http_status}"
    if err.code is None and err.http_status is not None and err.http_status < 300:
        return "unreadable reply"
    return None


@dataclass(frozen=True)
class RetryPolicy:
    """When and how long to wait before repeating a failed call.

    :param retries: how many times a call is repeated at most.
    :param max_wait: the most seconds spent waiting between the attempts of one call.
    :param base_delay: the first backoff; it doubles each time, with full jitter, up to ``max_delay``.
    :param max_delay: the longest single backoff (and the cap on ``Retry-After``).
    """

    retries: int
    max_wait: float
    base_delay: float = 0.5
    max_delay: float = 30.0

    def delay(self, attempt: int, err: EnOSError, idempotent: bool, waited: float) -> float | None:
        """Return the seconds to wait before the next attempt, or None to give up.

        :param attempt: the attempt that just failed, from 1.
        :param err: how it failed.
        :param idempotent: whether repeating the call is safe if it may have reached EnOS.
        :param waited: seconds already spent waiting for this call.
        """
        if attempt > self.retries or retry_reason(err, idempotent) is None:
            return None
        asked = getattr(err, "retry_after", None)
        if asked is not None:
            wait = min(asked, self.max_delay)
        else:
            wait = random.uniform(0, min(self.max_delay, self.base_delay * 2 ** (attempt - 1)))
        return wait if waited + wait <= self.max_wait else None


class RetryCounter:
    """Count the retries a hook made, across threads."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.value = 0

    def add(self) -> None:
        """Count one retry."""
        with self._lock:
            self.value += 1
