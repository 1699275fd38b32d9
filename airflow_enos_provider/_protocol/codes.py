"""The EnOS API's fixed facts, each defined once: its paths and every reply code the project knows.

Imports nothing, so the emulator and the protocol core share them (``enos-api.md`` sections 1 and 2).
"""

from __future__ import annotations

from enum import IntEnum

TOKEN_PATH = "/apim-token-service/v2.0/token/get"
BATCH_PATH = "/batch-processing-service/v2.1"


class EnOSCode(IntEnum):
    """Codes of the token service (``status`` of its v2.0 envelope) and of Batch Processing (``code``)."""

    SUCCESS = 0
    # Token service, "Get Access Token" / "Refresh Access Token" pages.
    TOKEN_DUPLICATED = 1001  # the encryption (timestamp) was used before: a replay
    TOKEN_APP_UNKNOWN = 1002
    TOKEN_ENCRYPTION_INVALID = 1003
    TOKEN_INVALID_PARAMETER = 1004
    TOKEN_INTERNAL = 1005
    TOKEN_PARAMETER_EMPTY = 1202
    TOKEN_EXPIRED = 1203
    TOKEN_REFRESH_FAILED = 1204
    # Batch Processing Service v2.1, the error-code table of its API pages.
    BP_USER_MISMATCH = 62101
    BP_INVALID_PARAMETER = 62102
    BP_NO_PRIVILEGE = 62103
    BP_DEPENDED_ON = 62104
    BP_LOCKED = 62105
    BP_INTERNAL = 62109


#: Codes that mean the credentials themselves are wrong (retrying cannot help).
AUTH_CODES = frozenset(
    {
        EnOSCode.TOKEN_APP_UNKNOWN,
        EnOSCode.TOKEN_ENCRYPTION_INVALID,
        EnOSCode.TOKEN_INVALID_PARAMETER,
        EnOSCode.TOKEN_PARAMETER_EMPTY,
    }
)


class EnOSFlowType(IntEnum):
    """A workflow's scheduling type (``type`` of Get Flow and of List Flow Instances' search)."""

    MANUAL = 0
    PERIODIC = 1
    TEMPORARY = 2
