"""Access tokens: one cache per process, replaced before they expire, with unique request timestamps."""

from __future__ import annotations

import asyncio
import math
import re
import threading
import time
import weakref
from collections.abc import Mapping
from typing import Any

from airflow_enos_provider.exceptions import EnOSAPIError

TokenKey = tuple[str, str]  # (gateway URL, access key)
#: The longest access token accepted (the documented ones are a few dozen characters).
MAX_TOKEN_LENGTH = 4096
#: The longest a token is kept, whatever ``expire`` says (the documented lifetime is 7200 s).
MAX_TOKEN_LIFE = 86400.0
_VISIBLE_ASCII = re.compile(r"[\x21-\x7e]+")


def refresh_margin(expire_seconds: float) -> float:
    """Return how many seconds before expiry a token is replaced: 10% of its life, at most 5 minutes.

    :param expire_seconds: the token's lifetime as the token service gave it.
    """
    return min(300.0, expire_seconds * 0.1)


def parse_token(data: Any) -> tuple[str, float]:
    """Return the token and its lifetime in seconds from a token-service reply's ``data``.

    The token must be 1 to :data:`MAX_TOKEN_LENGTH` visible ASCII characters (it goes into a header
    as it is); ``expire`` a non-negative number of seconds (an integer, a finite float, or digits),
    counted as at most :data:`MAX_TOKEN_LIFE`. Errors describe the token, never quote it.

    :param data: ``{"accessToken": ..., "expire": seconds}``.
    :raises EnOSAPIError: when either is missing or malformed.
    """

    def refuse(what: str) -> EnOSAPIError:
        return EnOSAPIError(f"the token service returned {what}", operation="get_access_token")

    if not isinstance(data, Mapping):
        raise refuse(f"no token object in data (got {type(data).__name__})")
    token = data.get("accessToken")
    if not isinstance(token, str) or not token:
        raise refuse("no accessToken")
    if len(token) > MAX_TOKEN_LENGTH or not _VISIBLE_ASCII.fullmatch(token):
        raise refuse(
            f"an accessToken that is not 1 to {MAX_TOKEN_LENGTH} visible ASCII characters "
            f"({len(token)} characters)"
        )
    expire = data.get("expire")
    seconds: float | None = None
    if isinstance(expire, (int, float)) and not isinstance(expire, bool):
        seconds = float(expire) if math.isfinite(expire) else None
    elif isinstance(expire, str) and expire.isascii() and expire.isdigit() and len(expire) <= 12:
        seconds = float(expire)
    if seconds is None or seconds < 0:
        shown = expire if isinstance(expire, (int, float)) else type(expire).__name__
        raise refuse(f"an expire that is not a number of seconds ({shown!r:.40})")
    return token, min(seconds, MAX_TOKEN_LIFE)


class TokenCache:
    """Access tokens shared by every hook in the process, per (gateway, access key)."""

    def __init__(self) -> None:
        # Held by the sync driver across a fetch, so concurrent threads wait for one token.
        self.lock = threading.Lock()
        self.tokens: dict[TokenKey, tuple[str, float]] = {}
        self.clock = time.monotonic  # replaceable, so tests can step past a token's refresh time
        self._last_timestamp = 0
        self._timestamp_lock = threading.Lock()
        self._async_locks: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, asyncio.Lock] = (
            weakref.WeakKeyDictionary()
        )

    def valid(self, key: TokenKey, stale: str | None = None) -> str | None:
        """Return the cached token for ``key`` unless it is missing, about to expire or ``stale``.

        :param key: the gateway URL and access key.
        :param stale: a token the gateway refused: never returned again.
        """
        cached = self.tokens.get(key)
        if cached and cached[0] != stale and self.clock() < cached[1]:
            return cached[0]
        return None

    def store(self, key: TokenKey, data: Any) -> str:
        """Keep the token of a token-service reply's ``data`` and return it.

        :param key: the gateway URL and access key.
        :param data: the reply's ``data``: ``{"accessToken": ..., "expire": seconds}``.
        """
        token, expire = parse_token(data)
        self.tokens[key] = (token, self.clock() + expire - refresh_margin(expire))
        return token

    def next_timestamp(self) -> int:
        """Return a millisecond timestamp for a token request, later than every one before."""
        # The token service refuses a repeated encryption (1001), so two requests in one millisecond
        # must not share a timestamp.
        with self._timestamp_lock:
            self._last_timestamp = max(int(time.time() * 1000), self._last_timestamp + 1)
            return self._last_timestamp

    def async_lock(self) -> asyncio.Lock:
        """Return the running loop's fetch lock: a thousand waiting triggers ask for one token."""
        loop = asyncio.get_running_loop()
        lock = self._async_locks.get(loop)
        if lock is None:
            lock = self._async_locks[loop] = asyncio.Lock()
        return lock

    def clear(self) -> None:
        """Forget every token."""
        with self.lock:
            self.tokens.clear()


TOKENS = TokenCache()
