"""Names that moved between Airflow 3.0 and 3.3, imported from where the running Airflow has them.

Airflow 3.3 is what the project is developed and pinned on; the fallbacks are for 3.0-3.2, where
``airflow.sdk`` did not yet export everything. ``make test-matrix`` runs the suite on 3.0.6 and 3.2.2
from their own lock files (``constraints/``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from airflow.sdk import BaseHook, BaseOperatorLink, conf
    from airflow.sdk.exceptions import AirflowException, AirflowFailException, AirflowSensorTimeout
    from airflow.sdk.log import amask_secret, mask_secret

    def redact(value: str) -> str: ...
else:
    try:
        from airflow.sdk.exceptions import AirflowException, AirflowFailException, AirflowSensorTimeout
    except ImportError:  # Airflow < 3.1
        from airflow.exceptions import AirflowException, AirflowFailException, AirflowSensorTimeout
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
    from airflow.sdk.log import mask_secret

    try:
        from airflow.sdk.log import amask_secret
    except ImportError:  # Airflow < 3.3: no async variant; masking locally is what matters here

        async def amask_secret(secret, name=None):
            mask_secret(secret, name)

    try:
        from airflow.sdk._shared.secrets_masker import redact
    except ImportError:  # older task SDKs
        from airflow.sdk.execution_time.secrets_masker import redact


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
    "BaseHook",
    "BaseOperatorLink",
    "airflow_version",
    "amask_secret",
    "conf",
    "mask_secret",
    "redact",
    "triggerer_calls_on_kill",
    "xcom_class",
]
