"""Decide whether a failed call is worth repeating, and how long to wait first."""

from __future__ import annotations

import random
import threading
from dataclasses import dataclass
from typing import Any, NamedTuple, Protocol

from airflow_enos_provider._protocol.codes import EnOSCode
from airflow_enos_provider.exceptions import EnOSAPIError, EnOSConnectionError, EnOSError


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


class Logger(Protocol):
    """The logging calls the retry machinery makes (an Airflow hook's or operator's ``log`` has them)."""

    def info(self, msg: Any, /, *args: Any) -> object:
        """Log an event worth knowing."""

    def warning(self, msg: Any, /, *args: Any) -> object:
        """Log a failure that was handled."""


@dataclass(frozen=True)
class RetryPolicy:
    """When and how long to wait before repeating a failed call.

    The one retry policy: a hook's calls use the connection's (:meth:`outlasting` gives the longer
    budget of a cancel that must outlast an outage).

    :param retries: how many times a call is repeated at most.
    :param max_wait: the most seconds spent waiting between the attempts of one call.
    :param base_delay: the first backoff; it doubles each time, with full jitter, up to ``max_delay``.
    :param max_delay: the longest single backoff (and the cap on ``Retry-After``).
    :param name: what the log calls an attempt under this policy (``"Cancel"``), for a policy that
        outlasts outages; None for a connection's own.
    """

    retries: int
    max_wait: float
    base_delay: float = 0.5
    max_delay: float = 30.0
    name: str | None = None

    @classmethod
    def outlasting(cls, name: str, budget: float, longest_pause: float) -> RetryPolicy:
        """Return the policy of calls that must outlast an outage: repeated for ``budget`` seconds.

        The pause starts at :data:`OUTAGE_FIRST_PAUSE` and doubles (with jitter) up to ``longest_pause``;
        the budget bounds the attempts, and ``retries`` is only a backstop.

        :param name: what the log says each attempt is for (``"Cancel of flow instance 2438-..."``).
        :param budget: the most seconds one call may take, its requests and the pauses between them
            (a pause that would end past it is not taken).
        :param longest_pause: the longest single pause.
        """
        return cls(MAX_OUTLASTING_ATTEMPTS, budget, OUTAGE_FIRST_PAUSE, longest_pause, name)

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


#: The pause after a wait's first failed poll; it doubles with each failure, up to the poll interval.
OUTAGE_FIRST_PAUSE = 1.0
#: A backstop on the attempts of a call that outlasts an outage (its budget ends it first).
MAX_OUTLASTING_ATTEMPTS = 100_000


class OutageStep(NamedTuple):
    """What a wait does after a failed poll (see :meth:`Outage.failed`).

    :param give_up: end the wait now (a failure repeating cannot help, or ``max_outage`` passed).
    :param pause: seconds to wait before the next poll, when going on.
    :param lasted: seconds since the first failed poll of this outage.
    :param reason: why the failure is transient, or why the wait gives up.
    """

    give_up: bool
    pause: float
    lasted: float
    reason: str


@dataclass
class Outage:
    """The clock of a wait's failed polls: how long the reads have failed, and whether to go on.

    A poll fails as a whole after the hook's own retries of its request; this counts such polls.
    Transient failures (:func:`retry_reason`) are waited through for ``max_outage`` seconds from the
    first one, with a pause that doubles from :data:`OUTAGE_FIRST_PAUSE` and never exceeds the poll
    interval; any other failure ends the wait at once. A good poll ends the outage.

    :param max_outage: the most seconds to poll through transient failures; None for no limit
        (the wait's own deadline still applies).
    :param poll_interval: seconds between good polls; the longest pause after a failure; 0 when
        Airflow times the polls (a sensor's pokes).
    :param unit: what the log calls a poll (``"poll"``, ``"poke"``).
    """

    max_outage: float | None
    poll_interval: float
    unit: str = "poll"
    since: float | None = None
    failures: int = 0

    def read_failed(self, log: Logger, ids: str, err: EnOSError, now: float) -> OutageStep:
        """Record a failed read of flow instances, log it when the wait goes on, and say what to do.

        The trigger and the sensor log an outage through this and :meth:`read_again`, with one text.

        :param log: where to log.
        :param ids: the instance ids read, for the log.
        :param err: how the read failed.
        :param now: the time of the failure (a monotonic clock, in seconds).
        """
        step = self.failed(err, now)
        if not step.give_up:
            after = f"next {self.unit} in {step.pause:.1f} s" if self.poll_interval else "not yet"
            limit = "until the deadline" if self.max_outage is None else f"{self.max_outage:g} s"
            log.warning(
                "Reading EnOS flow instance(s) %s failed (%s); outage %.0f s so far, %s failed %s(s), "
                "%s, max_outage %s: %s",
                ids, step.reason, step.lasted, self.failures, self.unit, after, limit, err,
            )  # fmt: skip
        return step

    def read_again(self, log: Logger, ids: str, now: float) -> None:
        """End the outage after a good read, logging it once if there was one.

        :param log: where to log.
        :param ids: the instance ids read, for the log.
        :param now: the time of the good read.
        """
        if (ended := self.recovered(now)) is not None:
            log.info(
                "EnOS flow instance(s) %s readable again after an outage of %.0f s (%s failed %s(s))",
                ids, ended[1], ended[0], self.unit,
            )  # fmt: skip

    def failed(self, err: EnOSError, now: float) -> OutageStep:
        """Record a failed poll and say whether, and after how long, to poll again.

        :param err: how the poll failed.
        :param now: the time of the failure (a monotonic clock, in seconds).
        """
        reason = retry_reason(err, idempotent=True)
        if reason is None:
            return OutageStep(True, 0.0, self.lasted(now), "not a transient failure")
        if self.since is None:
            self.since = now
        self.failures += 1
        lasted = now - self.since
        if self.max_outage is not None and lasted >= self.max_outage:
            return OutageStep(True, 0.0, lasted, f"{reason}; max_outage of {self.max_outage:g} s passed")
        pause = min(self.poll_interval, OUTAGE_FIRST_PAUSE * 2 ** min(self.failures - 1, 30))
        asked = getattr(err, "retry_after", None)
        if asked is not None:
            pause = max(pause, min(float(asked), self.poll_interval))
        if self.max_outage is not None:
            pause = min(pause, self.max_outage - lasted)
        return OutageStep(False, pause, lasted, reason)

    def lasted(self, now: float) -> float:
        """Return the seconds since the first failed poll of the current outage, or 0.

        :param now: the current time on the clock :meth:`failed` was given.
        """
        return 0.0 if self.since is None else now - self.since

    def recovered(self, now: float) -> tuple[int, float] | None:
        """End the outage after a good poll: return (failed polls, seconds it lasted), or None if none.

        :param now: the time of the good poll.
        """
        if self.since is None:
            return None
        ended = (self.failures, now - self.since)
        self.since, self.failures = None, 0
        return ended


class RetryCounter:
    """Count the retries a hook made, across threads."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.value = 0

    def add(self) -> None:
        """Count one retry."""
        with self._lock:
            self.value += 1
