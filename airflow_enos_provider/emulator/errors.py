"""The typed errors the emulator's backend raises; :mod:`.responses` renders them."""

from __future__ import annotations

from airflow_enos_provider._protocol.codes import EnOSCode

__all__ = ["AccessDenied", "ApiError", "invalid_parameter"]


class ApiError(Exception):
    """Signal a business error that the server returns inside the reply envelope."""

    def __init__(self, code: EnOSCode, msg: str, violations: tuple[str, ...] = ()) -> None:
        """Build the error.

        :param code: the EnOS code (``status`` for the token service, ``code`` for v2.1).
        :param msg: the envelope's ``msg``.
        :param violations: the request's breaches of its contract, one per field, when that is the cause.
        """
        super().__init__(f"{code.value}: {msg}")
        self.code = code
        self.msg = msg
        self.violations = violations


def invalid_parameter(msg: str, violations: tuple[str, ...] = ()) -> ApiError:
    """Return the Batch error most checks raise (62102, the API pages' "invalid parameter").

    :param msg: the envelope's ``msg``.
    :param violations: the contract breaches behind it, if any.
    """
    return ApiError(EnOSCode.BP_INVALID_PARAMETER, msg, violations)


class AccessDenied(Exception):
    """Signal that an ``apim-accesstoken`` header names no valid token.

    :param expired: True for a token that was issued and has expired, False for an unknown one.
    """

    def __init__(self, expired: bool) -> None:
        super().__init__("access token expired" if expired else "unknown access token")
        self.expired = expired
