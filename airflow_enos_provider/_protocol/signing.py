"""Compute the EnOS token-request ``encryption`` and the per-request ``apim-signature``.

Pure functions with no I/O, shared by the hook (to sign) and the emulator (to verify), so both
sides of every test agree on one implementation of ``enos-api.md`` section 1.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
from urllib.parse import parse_qsl

QueryInput = str | Mapping[str, object] | Iterable[tuple[str, object]]


def token_encryption(app_key: str, timestamp_ms: int, app_secret: str) -> str:
    """Return the ``encryption`` field of a token request.

    :param app_key: the application's access key.
    :param timestamp_ms: the request's Unix time in milliseconds (sent as ``timestamp``).
    :param app_secret: the application's secret key.
    """
    return hashlib.sha256(f"{app_key}{int(timestamp_ms)}{app_secret}".encode()).hexdigest()


def _query_pairs(query: QueryInput) -> list[tuple[str, str]]:
    if isinstance(query, str):
        # parse_qsl percent-decodes and turns "+" into a space, which is what the gateway signs.
        return parse_qsl(query.lstrip("?"), keep_blank_values=True)
    items = query.items() if isinstance(query, Mapping) else query
    return [(str(name), "" if value is None else str(value)) for name, value in items]


def params_data(query: QueryInput, body: bytes | None = None) -> bytes:
    """Return the ``paramsData`` part of the string to sign, as UTF-8 bytes.

    :param query: the URL query: a raw query string (decoded here), a mapping or name/value pairs
        of already decoded values.
    :param body: the exact request body bytes, or None when the request has no body.
    """
    first: dict[str, str] = {}
    for name, value in _query_pairs(query):
        first.setdefault(name, value)  # a repeated name counts once, with its first value
    joined = "".join(name + first[name] for name in sorted(first))
    return joined.encode() + (body or b"")


def request_signature(
    access_token: str,
    query: QueryInput,
    body: bytes | None,
    timestamp_ms: int,
    app_secret: str,
) -> str:
    """Return the ``apim-signature`` header value for one API call.

    :param access_token: the token sent in ``apim-accesstoken``.
    :param query: the URL query (see :func:`params_data`).
    :param body: the exact body bytes sent, or None.
    :param timestamp_ms: the value sent in ``apim-timestamp``.
    :param app_secret: the application's secret key.
    """
    sign_data = (
        access_token.encode()
        + params_data(query, body)
        + str(int(timestamp_ms)).encode()
        + app_secret.encode()
    )
    return hashlib.sha256(sign_data).hexdigest()
