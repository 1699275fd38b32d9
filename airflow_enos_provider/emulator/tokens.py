"""The emulated token service (``enos-api.md`` section 1; "Get/Refresh Access Token" pages).

It takes parsed requests (:class:`TokenRequest`) and raises :class:`ApiError` with the token
service's codes; :mod:`.responses` reads the HTTP body and renders the v2.0 ``status`` envelope.
"""

from __future__ import annotations

import math
import secrets
from dataclasses import dataclass

from airflow_enos_provider._protocol.codes import EnOSCode
from airflow_enos_provider._protocol.signing import token_encryption
from airflow_enos_provider.emulator.errors import AccessDenied, ApiError
from airflow_enos_provider.emulator.models import App, Token

__all__ = ["DEFAULT_TOKEN_TTL", "TokenRequest", "TokenService", "check_ttl"]

DEFAULT_TOKEN_TTL = 7200.0


@dataclass(frozen=True)
class TokenRequest:
    """A ``token/get`` or ``token/refresh`` body, its fields present and typed.

    :param app_key: ``appKey``.
    :param timestamp_ms: ``timestamp``, the client's clock in epoch ms.
    :param encryption: ``encryption``, lower-cased.
    :param access_token: ``accessToken``, the token being refreshed (refresh only).
    """

    app_key: str
    timestamp_ms: int
    encryption: str
    access_token: str | None = None


def check_ttl(value: float) -> float:
    """Return a token lifetime in seconds, refusing one that is not positive."""
    ttl = float(value)
    if not ttl > 0:
        raise ValueError(f"token_ttl must be positive, not {value!r}")
    return ttl


class TokenService:
    """Issue, refresh, expire and look up access tokens (the caller holds the tenant's lock).

    :param apps: the tenant's app registrations by access key (shared, not copied).
    """

    def __init__(self, apps: dict[str, App]) -> None:
        self._apps = apps
        self.ttl = DEFAULT_TOKEN_TTL
        self._tokens: dict[str, Token] = {}
        self._app_tokens: dict[str, str] = {}
        self._issued: list[str] = []
        self._seen_encryptions: set[str] = set()

    def get(self, request: TokenRequest, now: float) -> dict[str, int | str]:
        """Answer ``token/get``: the app's current token while it is valid, else a new one."""
        app = self._check(request)
        current = self._app_tokens.get(app.access_key)
        record = self._tokens.get(current) if current else None
        if current is not None and record is not None and record.valid_at(now):
            # Rounded up so a still-valid token never reports 0 seconds left.
            return {"accessToken": current, "expire": math.ceil(record.expires_at - now)}
        return self._issue(app, now)

    def refresh(self, request: TokenRequest, now: float) -> dict[str, int | str]:
        """Answer ``token/refresh``: issue a fresh token and expire the one being refreshed."""
        app = self._check(request)
        old = self._tokens.get(request.access_token or "")
        if old is None or old.app_key != app.access_key:
            raise ApiError(EnOSCode.TOKEN_REFRESH_FAILED, "Failed to refresh access token")
        old.expire(now)
        return self._issue(app, now)

    def expire_all(self, now: float) -> None:
        """Make every token issued so far expired as of ``now``."""
        for token in self._tokens.values():
            token.expire(now)

    def issued(self) -> list[str]:
        """Return every access token ever issued, oldest first."""
        return list(self._issued)

    def secret_for(self, access_token: str | None, now: float) -> str:
        """Return the secret of the app a valid token was issued to.

        :raises AccessDenied: for an unknown token (or one of a removed app), or an expired one.
        """
        record = self._tokens.get(access_token) if access_token else None
        if record is None:
            raise AccessDenied(expired=False)
        if not record.valid_at(now):
            raise AccessDenied(expired=True)
        app = self._apps.get(record.app_key)
        if app is None:
            raise AccessDenied(expired=False)
        return app.secret_key

    def _check(self, request: TokenRequest) -> App:
        app = self._apps.get(request.app_key)
        if app is None:
            raise ApiError(EnOSCode.TOKEN_APP_UNKNOWN, "AppKey does not exist")
        if request.encryption != token_encryption(app.access_key, request.timestamp_ms, app.secret_key):
            raise ApiError(EnOSCode.TOKEN_ENCRYPTION_INVALID, "Encryption is not valid")
        # A replayed encryption is refused even with a valid signature ("Get Access Token", 1001).
        if request.encryption in self._seen_encryptions:
            raise ApiError(EnOSCode.TOKEN_DUPLICATED, "Duplicated encryption")
        self._seen_encryptions.add(request.encryption)
        return app

    def _issue(self, app: App, now: float) -> dict[str, int | str]:
        token = secrets.token_hex(16)
        self._tokens[token] = Token(app.access_key, now + self.ttl)
        self._app_tokens[app.access_key] = token
        self._issued.append(token)
        return {"accessToken": token, "expire": int(self.ttl)}
