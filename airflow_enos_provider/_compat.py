"""Names that moved between Airflow 3.0 and 3.3, imported from where the running Airflow has them.

Airflow 3.3 is what the project is developed and pinned on; the fallbacks are for 3.0-3.2, where
``airflow.sdk`` did not yet export everything (checked by hand on 3.0.6 and 3.2.2; a pinned version
matrix in CI is still to come).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from airflow.sdk import BaseHook, conf
    from airflow.sdk.exceptions import AirflowException, AirflowFailException, AirflowSensorTimeout
    from airflow.sdk.log import amask_secret, mask_secret
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
    from airflow.sdk.log import mask_secret

    try:
        from airflow.sdk.log import amask_secret
    except ImportError:  # Airflow < 3.3: no async variant; masking locally is what matters here

        async def amask_secret(secret, name=None):
            mask_secret(secret, name)


__all__ = [
    "AirflowException",
    "AirflowFailException",
    "AirflowSensorTimeout",
    "BaseHook",
    "amask_secret",
    "conf",
    "mask_secret",
]
