"""The gateway's checks of a Batch call: access token, then signature (``enos-api.md`` section 1).

A failure is answered by the gateway itself with HTTP 401 and a ``{"message": ...}`` body (section
2), except an expired token, which carries the token service's code so a client knows to refresh.
"""

from __future__ import annotations

import hmac
from collections.abc import Mapping
from email.message import Message
from typing import TYPE_CHECKING, Any

from airflow_enos_provider._protocol.codes import EnOSCode
from airflow_enos_provider._protocol.signing import request_signature
from airflow_enos_provider.emulator.errors import AccessDenied

if TYPE_CHECKING:
    from airflow_enos_provider.emulator.state import EmulatorState

__all__ = ["BAD_SIGNATURE", "EXPIRED", "INVALID_CREDENTIALS", "STALE_TIMESTAMP", "check_access"]

INVALID_CREDENTIALS: dict[str, Any] = {"message": "Invalid credentials"}
BAD_SIGNATURE: dict[str, Any] = {"message": "Signature verification failed"}
# The real gateway's tolerance for a client's clock is undocumented; see EmulatorState.max_skew.
STALE_TIMESTAMP: dict[str, Any] = {"message": "Signature verification failed: timestamp out of range"}
EXPIRED: dict[str, Any] = {"code": EnOSCode.TOKEN_EXPIRED.value, "msg": "Access token expired"}


def check_access(
    state: EmulatorState, headers: Message[str, str], query: Mapping[str, str], body: bytes
) -> dict[str, Any] | None:
    """Return the 401 body that refuses a call, or None when its token and signature verify.

    :param state: the tenant that issued the tokens.
    :param headers: the request headers (``apim-accesstoken``, ``apim-timestamp``, ``apim-signature``).
    :param query: the decoded query (each name's first value).
    :param body: the exact body bytes.
    """
    token = headers.get("apim-accesstoken")
    try:
        secret = state.authenticate(token)
    except AccessDenied as denied:
        return EXPIRED if denied.expired else INVALID_CREDENTIALS
    if token is None:
        return INVALID_CREDENTIALS
    signature = headers.get("apim-signature") or ""
    try:
        timestamp_ms = int(headers.get("apim-timestamp") or "")
    except ValueError:
        return BAD_SIGNATURE
    # The dict holds each name's first value, which is all the signature covers of a repeated name.
    expected = request_signature(token, query, body or None, timestamp_ms, secret)
    if not hmac.compare_digest(expected.encode(), signature.encode()):
        return BAD_SIGNATURE
    if (skew := state.max_skew) is not None and abs(timestamp_ms / 1000 - state.now()) > skew:
        return STALE_TIMESTAMP
    state.note_signature(signature)
    return None
