"""Flow-instance statuses of the EnOS Batch Processing Service."""

from __future__ import annotations

from enum import IntEnum

__all__ = ["EnOSFlowInstanceStatus"]


class EnOSFlowInstanceStatus(IntEnum):
    """Status codes of a flow instance (``enos-api.md`` section 3)."""

    FAIL = -1
    INIT = 0
    SUCCESS = 1
    RUNNING = 2
    SUSPEND = 3
    INTERNAL_ERROR = 4
    WAIT = 5
    READY = 6
    TIMEOUT = 7
    CANCEL = 8
    RERUN = 9
    SKIP = 10

    @property
    def is_final(self) -> bool:
        """Say whether the instance will not change any more (EnOS does not document this; see docs)."""
        return self in _FINAL

    @classmethod
    def final_statuses(cls) -> frozenset[EnOSFlowInstanceStatus]:
        """Return the statuses after which an instance no longer runs."""
        return _FINAL

    @classmethod
    def active_statuses(cls) -> frozenset[EnOSFlowInstanceStatus]:
        """Return the statuses of an instance that may still run."""
        return frozenset(cls) - _FINAL

    @classmethod
    def parse(cls, value: object, field: str = "status") -> EnOSFlowInstanceStatus:
        """Turn a member, a code (int or digit string) or a name into a status.

        :param value: the value to convert.
        :param field: the parameter name to show in the error.
        :raises EnOSValidationError: when the value is no known status.
        """
        if isinstance(value, cls):
            return value
        if isinstance(value, str):
            text = value.strip()
            if text.upper() in cls.__members__:
                return cls[text.upper()]
            if text.lstrip("-").isdigit():
                value = int(text)
        if isinstance(value, int) and not isinstance(value, bool):
            try:
                return cls(value)
            except ValueError:
                pass
        known = ", ".join(f"{m.name} ({m.value})" for m in cls)
        raise _invalid(f"{field}: {value!r} is not a flow-instance status; expected one of {known}")


_FINAL = frozenset(
    {
        EnOSFlowInstanceStatus.FAIL,
        EnOSFlowInstanceStatus.SUCCESS,
        EnOSFlowInstanceStatus.INTERNAL_ERROR,
        EnOSFlowInstanceStatus.TIMEOUT,
        EnOSFlowInstanceStatus.CANCEL,
        EnOSFlowInstanceStatus.SKIP,
    }
)


def _invalid(message: str) -> Exception:
    # Imported here, not at the top: the emulator uses the statuses without loading Airflow, which
    # the exceptions' base classes come from.
    from airflow_enos_provider.exceptions import EnOSValidationError

    return EnOSValidationError(message)
