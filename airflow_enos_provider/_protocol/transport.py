"""What a transport does: send a prepared request, and fail in one of a few ways the core names."""

from __future__ import annotations

import re
from enum import Enum
from typing import Protocol

from airflow_enos_provider._protocol.operations import PreparedRequest, RawReply
from airflow_enos_provider.exceptions import EnOSConnectionError


class Failure(Enum):
    """How a request failed before any reply came; each transport maps its library's errors here."""

    TLS = "the certificate check failed"
    NOT_CONNECTED = "refused, unreachable or unresolvable"
    CONNECT_TIMEOUT = "no connection within the timeout"
    READ_TIMEOUT = "sent, but no reply within the timeout"
    BROKEN = "the connection broke during the exchange"

    @property
    def maybe_sent(self) -> bool:
        """Say whether the request may have reached EnOS (then a call that starts work is not repeated)."""
        return self in (Failure.READ_TIMEOUT, Failure.BROKEN)


class SyncTransport(Protocol):
    """Sends one prepared request and waits for the reply."""

    def send(self, request: PreparedRequest) -> RawReply:
        """Send the request and return the reply.

        :raises ~airflow_enos_provider.exceptions.EnOSConnectionError: when no reply came.
        """


class AsyncTransport(Protocol):
    """Sends one prepared request without blocking the event loop."""

    async def send(self, request: PreparedRequest) -> RawReply:
        """Send the request and return the reply.

        :raises ~airflow_enos_provider.exceptions.EnOSConnectionError: when no reply came.
        """


def connection_error(request: PreparedRequest, failure: Failure, err: BaseException) -> EnOSConnectionError:
    """Return the error a user sees when ``request`` got no reply.

    :param request: the request that failed.
    :param failure: how it failed.
    :param err: the library's exception, named in the message.
    """
    about = f"EnOS {request.operation}"
    if request.flow_inst_id:
        about += f" of flow instance {request.flow_inst_id}"
    if failure is Failure.TLS:
        reason = ssl_reason(err)
        if any(marker in reason for marker in _PLAIN_HTTP_MARKERS):
            advice = (
                f"{request.gateway} answered plain HTTP to an HTTPS request ({reason}); if the gateway "
                "serves plain HTTP, put http:// in front of the connection's host"
            )
        else:
            advice = (
                f"TLS verification of {request.gateway} failed ({reason}); set the connection's 'verify' "
                "extra to a CA bundle path if the gateway uses a private CA"
            )
        return EnOSConnectionError(f"{about}: {advice}", maybe_sent=False, tls=True)
    if failure in (Failure.CONNECT_TIMEOUT, Failure.READ_TIMEOUT):
        return EnOSConnectionError(
            f"{about}: no reply from {request.gateway} within {request.timeout:g} s",
            maybe_sent=failure.maybe_sent,
        )
    why = f"{type(err).__name__}: {err}"
    return EnOSConnectionError(
        f"{about}: could not reach {request.gateway} ({why})", maybe_sent=failure.maybe_sent
    )


# What OpenSSL says when the other end speaks plain HTTP to a TLS handshake.
_PLAIN_HTTP_MARKERS = (
    "WRONG_VERSION_NUMBER",
    "record layer failure",
    "HTTP_REQUEST",
    "packet length too long",
)


def ssl_reason(err: BaseException) -> str:
    """Return OpenSSL's own words from a library's TLS error (``[SSL: CODE] text``), else the error.

    :param err: the library's exception, which wraps the ssl module's.
    """
    text = str(err)
    found = re.search(r"\[SSL(?:: [A-Z_]+)?\][^'\")\]]*", text)
    if not found:
        return f"{type(err).__name__}: {text:.200}"
    # OpenSSL's words end with where in CPython it failed, "(_ssl.c:1006)", whose ")" the match
    # stops before: drop that location so the message's own parenthesis closes.
    return re.sub(r"\s*\(_ssl\.c:\d+$", "", found.group(0).strip())
