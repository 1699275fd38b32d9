"""Names that moved between Airflow 2.11 and 3.3, imported from where the running Airflow has them.

Airflow 3.3 is what the project is developed and pinned on; the fallbacks are for 2.11 and 3.0-3.2,
where ``airflow.sdk`` did not exist (2.x) or did not yet export everything. ``make test-matrix`` runs
the suite on 2.11.2, 3.0.6 and 3.2.2 from their own lock files (``constraints/``).

A module of the project's own rather than ``apache-airflow-providers-common-compat``: the handful of
names used here need one ``try`` each, and the operator, sensor and notifier modules import only the
base class they subclass (the task-SDK classes load lazily, on first use), which keeps the DAG-parse
import budget on every version; common-compat would be one more dependency pinned per version for
the same few lines.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from airflow.sdk import (
        BaseHook,
        BaseNotifier,
        BaseOperator,
        BaseOperatorLink,
        BaseSensorOperator,
        conf,
    )
    from airflow.sdk.exceptions import (
        AirflowException,
        AirflowFailException,
        AirflowSensorTimeout,
        AirflowSkipException,
        TaskDeferred,
    )
    from airflow.sdk.log import amask_secret, mask_secret

    def redact(value: str) -> str: ...
else:
    try:
        from airflow.sdk.exceptions import (
            AirflowException,
            AirflowFailException,
            AirflowSensorTimeout,
            AirflowSkipException,
            TaskDeferred,
        )
    except ImportError:  # Airflow < 3.1
        from airflow.exceptions import (
            AirflowException,
            AirflowFailException,
            AirflowSensorTimeout,
            AirflowSkipException,
            TaskDeferred,
        )
    try:
        from airflow.sdk import conf
    except ImportError:  # Airflow < 3.1
        from airflow.configuration import conf
    try:
        from airflow.sdk import BaseHook
    except ImportError:  # Airflow < 3.1
        from airflow.hooks.base import BaseHook
    try:
        from airflow.sdk import BaseOperatorLink
    except ImportError:  # Airflow < 3.1
        from airflow.models.baseoperatorlink import BaseOperatorLink
    try:
        from airflow.sdk.log import mask_secret
    except ImportError:  # Airflow 2
        from airflow.utils.log.secrets_masker import mask_secret

    try:
        from airflow.sdk.log import amask_secret
    except ImportError:  # Airflow < 3.3: no async variant; masking locally is what matters here

        async def amask_secret(secret, name=None):
            mask_secret(secret, name)

    try:
        from airflow.sdk._shared.secrets_masker import redact
    except ImportError:
        try:  # older task SDKs
            from airflow.sdk.execution_time.secrets_masker import redact
        except ImportError:  # Airflow 2: no task SDK
            from airflow.utils.log.secrets_masker import redact

    # Each operator-like module needs one base class: loaded on first use, so importing the operator
    # module does not also import the sensor and notifier bases (the DAG-parse budget).
    _BASES = {
        "BaseOperator": ("airflow.sdk", "airflow.models.baseoperator"),
        "BaseSensorOperator": ("airflow.sdk", "airflow.sensors.base"),
        "BaseNotifier": ("airflow.sdk", "airflow.notifications.basenotifier"),
    }

    def __getattr__(name: str) -> Any:
        if name not in _BASES:
            raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
        import importlib

        new, old = _BASES[name]
        try:  # Airflow 3
            value = getattr(importlib.import_module(new), name)
        except ImportError:  # Airflow 2: no task SDK
            value = getattr(importlib.import_module(old), name)
        globals()[name] = value
        return value


def airflow_version() -> str:
    """Return the running Airflow's version."""
    from airflow import __version__

    return str(__version__)


def xcom_class() -> Any:
    """Return the XCom class tasks read XComs with (imported when a link is asked for)."""
    try:
        from airflow.sdk.execution_time.xcom import XCom
    except ImportError:  # Airflow < 3.1
        from airflow.models.xcom import XCom  # type: ignore[no-redef]
    return XCom


def triggerer_calls_on_kill() -> bool:
    """Tell whether the triggerer calls ``BaseTrigger.on_kill`` when a user kills a deferred task.

    Airflow 3.3 added the hook; older triggerers never call it, whatever a trigger defines.
    """
    # Imported here: operator modules load on every DAG parse and need the answer only when deferring.
    from airflow.triggers.base import BaseTrigger

    return hasattr(BaseTrigger, "on_kill")


__all__ = [
    "AirflowException",
    "AirflowFailException",
    "AirflowSensorTimeout",
    "AirflowSkipException",
    "BaseHook",
    "BaseNotifier",
    "BaseOperator",
    "BaseOperatorLink",
    "BaseSensorOperator",
    "TaskDeferred",
    "airflow_version",
    "amask_secret",
    "conf",
    "mask_secret",
    "redact",
    "triggerer_calls_on_kill",
    "xcom_class",
]
