"""Access tokens: one cache per process, replaced before they expire, with unique request timestamps."""

from __future__ import annotations

import asyncio
import threading
import time
import weakref
from collections.abc import Mapping
from typing import Any

from airflow_enos_provider.exceptions import EnOSAuthenticationError

TokenKey = tuple[str, str]  # (gateway URL, access key)


def refresh_margin(expire_seconds: float) -> float:
    """Return how many seconds before expiry a token is replaced: 10% of its life, at most 5 minutes.

    :param expire_seconds: the token's lifetime as the token service gave it.
    """
    return min(300.0, expire_seconds * 0.1)


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
        token = data.get("accessToken") if isinstance(data, Mapping) else None
        if not isinstance(token, str) or not token:
            raise EnOSAuthenticationError(
                "the token service returned no accessToken", operation="get_access_token"
            )
        expire = float(data.get("expire") or 0)
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
