"""The call flow, written once: get a token, send, refresh an expired token once, retry with backoff.

One request's flow is a generator, the package's only flow (as httpx's auth flow): it does no
I/O, it yields what it needs done (:class:`Send`, :class:`Sleep`, :class:`FetchToken`) and receives
the result, or has the failure thrown in where it yielded. ``airflow_enos_provider._transports.drivers``
runs it with blocking or with async I/O, so the sync and async hook methods share it. Procedures of
several calls ("cancel, then read the instance if EnOS refused", the search's pages, the trigger) are
plain hook methods that make one call after another (``airflow_enos_provider.hooks.enos``).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Generator
from dataclasses import dataclass
from typing import Any, TypeVar

from airflow_enos_provider._connection import EnOSConnectionSettings
from airflow_enos_provider._protocol.codes import EnOSCode
from airflow_enos_provider._protocol.envelope import parse_reply
from airflow_enos_provider._protocol.operations import (
    GET_ACCESS_TOKEN,
    Operation,
    PreparedRequest,
    prepare,
    token_request,
)
from airflow_enos_provider._protocol.retry import Logger, RetryCounter, RetryPolicy, retry_reason
from airflow_enos_provider._protocol.tokens import TOKENS, TokenCache, TokenKey
from airflow_enos_provider.exceptions import EnOSAPIError, EnOSAuthenticationError, EnOSError

T = TypeVar("T")
CLOCK_SKEW_WARNING = 30.0  # seconds of difference with the gateway worth naming in an error


@dataclass(frozen=True, slots=True)
class Send:
    """Send this request and return its :class:`~.operations.RawReply`."""

    request: PreparedRequest


@dataclass(frozen=True, slots=True)
class Sleep:
    """Wait this many seconds before the next attempt."""

    seconds: float


@dataclass(frozen=True, slots=True)
class FetchToken:
    """Return a fresh access token, one fetch at a time per process (or event loop).

    The driver takes the token cache's lock, then returns :meth:`cached` if another caller got a
    token meanwhile, else runs :meth:`fetch`.
    """

    caller: Caller
    stale: str | None

    @property
    def tokens(self) -> TokenCache:
        """Return the cache whose lock the driver holds."""
        return self.caller.tokens

    def cached(self) -> str | None:
        """Return the token another caller fetched while this one waited for the lock, if any."""
        return self.tokens.valid(self.caller.token_key, self.stale)

    def fetch(self) -> Flow[str]:
        """Ask the token service for a token and keep it."""
        data = yield from self.caller.call(GET_ACCESS_TOKEN)
        return self.tokens.store(self.caller.token_key, data)


Action = Send | Sleep | FetchToken
Flow = Generator[Action, Any, T]


@dataclass(frozen=True)
class Caller:
    """Everything one hook call needs that is not I/O: the connection, identity, limits and logger.

    :param settings: the connection's settings.
    :param policy: when to repeat a failed call.
    :param timeout: seconds each request waits for its reply.
    :param log: where retries and recoveries are logged.
    :param retry_count: counts the retries, for the hook's ``retry_count``.
    :param user_id: the Batch call's user id; None for the connection's ``user_id`` extra.
    :param org_id: the Batch call's org id; None for the connection's ``org_id`` extra.
    :param tokens: the token cache (the process-wide one unless a test gives another).
    """

    settings: EnOSConnectionSettings
    policy: RetryPolicy
    timeout: float
    log: Logger
    retry_count: RetryCounter
    user_id: str | None = None
    org_id: str | None = None
    tokens: TokenCache = TOKENS

    @property
    def token_key(self) -> TokenKey:
        """Return the token cache key: tokens belong to a gateway and an access key."""
        return (self.settings.gateway_url, self.settings.access_key)

    def token(self, stale: str | None = None) -> Flow[str]:
        """Return a valid access token, from the cache when it has one.

        :param stale: a token the gateway refused, which must not be returned again.
        """
        token = self.tokens.valid(self.token_key, stale)
        if token is None:
            token = yield FetchToken(self, stale)
        return token

    def call(self, op: Operation, before_repeat: Callable[[EnOSError], Any] | None = None) -> Flow[Any]:
        """Run one EnOS call until it succeeds or the policy gives up, and return the reply's ``data``.

        A token refused as expired is replaced once without counting as an attempt. A token that
        cannot be had is not retried here (its own call was).

        :param op: the call.
        :param before_repeat: for a call that is not idempotent: run before repeating it after a
            failure that may have reached EnOS; a result other than None is taken as the call's (the
            work was done although the reply was lost), and None makes repeating safe. Such repeats
            share the one attempt count and wait budget of the policy. It makes calls of its own
            (blocking: only the sync driver runs a flow that has one, the trigger's).
        """
        identity = self.settings.batch_identity(self.user_id, self.org_id) if op.authenticated else None
        repeatable = op.idempotent or before_repeat is not None
        attempt, waited, refreshed, token, stale = 1, 0.0, False, None, None
        started = time.monotonic()
        try:
            while True:
                if op.authenticated:
                    token = yield from self.token(stale)
                    sent = op
                else:  # a fresh timestamp for each attempt: a repeated one is refused as a replay
                    sent = token_request(self.settings, self.tokens.next_timestamp())
                request = prepare(sent, self.settings, identity, token, self.timeout)
                try:
                    reply = yield Send(request)
                    return parse_reply(
                        http_status=reply.status,
                        body=reply.body,
                        operation=op.name,
                        flow_inst_id=op.flow_inst_id,
                        headers=reply.headers,
                    )
                except EnOSError as err:
                    failure = explain_not_found(err, request)
                if op.authenticated and not refreshed and token_refused(failure):
                    refreshed, stale = True, token
                    self.log.info(
                        "EnOS refused the access token for %s (expired); getting a new one", op.name
                    )
                    continue
                # A budget that must bound the caller (the cancel's cancel_timeout) counts the requests'
                # own time too, not only the pauses between them.
                spent = time.monotonic() - started if self.policy.name is not None else waited
                delay = self.policy.delay(attempt, failure, repeatable, spent)
                if delay is None:
                    raise failure
                if before_repeat is not None and retry_reason(failure, op.idempotent) is None:
                    done = before_repeat(failure)
                    if done is not None:
                        return done
                self._log_retry(op, attempt, failure, delay, spent)
                yield Sleep(delay)
                waited += delay
                attempt += 1
        except EnOSAPIError as err:
            raise explain_clock_skew(err) from None

    def _log_retry(self, op: Operation, attempt: int, err: EnOSError, delay: float, waited: float) -> None:
        self.retry_count.add()
        what = op.name if op.flow_inst_id is None else f"{op.name} of flow instance {op.flow_inst_id}"
        if self.policy.name is not None:  # a call that outlasts outages: its budget is what counts
            self.log.warning(
                "%s: attempt %s of EnOS %s failed (%s) after %.0f s, of %.0f s; retrying in %.2f s",
                self.policy.name, attempt, what, retry_reason(err, True), waited, self.policy.max_wait, delay,
            )  # fmt: skip
            return
        self.log.warning(
            "EnOS %s failed on attempt %s of %s (%s); retrying in %.2f s",
            what, attempt, self.policy.retries + 1, retry_reason(err, True), delay,
        )  # fmt: skip


def token_refused(err: EnOSError) -> bool:
    """Say whether the gateway refused the access token, so a new one may help.

    :param err: the failure.
    """
    return isinstance(err, EnOSAPIError) and (err.code == EnOSCode.TOKEN_EXPIRED or err.http_status == 401)


def explain_not_found(err: EnOSError, request: PreparedRequest) -> EnOSError:
    """Return ``err``, or, for a bare 404, an error that names the URL and says what the host must be.

    A gateway answers 404 without an EnOS code when the path is wrong, most often because the
    connection's host carries a path of its own.

    :param err: how the call failed.
    :param request: the request that got the reply.
    """
    if not isinstance(err, EnOSAPIError) or err.http_status != 404 or err.code is not None:
        return err
    url = request.url.split("?", 1)[0]
    hint = (
        f"Nothing answers at {url}: the connection's host must be the gateway root (for example "
        "https://apim-ppe1.envisioniot.com), without a path"
    )
    kept = ("operation", "http_status", "request_id", "flow_inst_id", "retry_after", "server_time")
    return EnOSAPIError(err.message, hint=hint, **{name: getattr(err, name) for name in kept})


def explain_clock_skew(err: EnOSAPIError) -> EnOSAPIError:
    """Return ``err``, or an error that names this machine's clock when it is off the gateway's.

    A signature refused although the token was fresh is most often a clock that is off.

    :param err: the final failure of a call.
    """
    if err.http_status != 401 or err.server_time is None:
        return err
    skew = time.time() - err.server_time
    if abs(skew) < CLOCK_SKEW_WARNING:
        return err
    direction = "ahead of" if skew > 0 else "behind"
    kept = ("operation", "code", "http_status", "request_id", "flow_inst_id", "server_time")
    return EnOSAuthenticationError(
        err.message,
        hint=(
            f"This machine's clock is {abs(skew):.0f} s {direction} the gateway's (measured against the "
            "reply's Date header): the signature's timestamp is out of range. Synchronise the clock (NTP)"
        ),
        **{name: getattr(err, name) for name in kept},
    )
