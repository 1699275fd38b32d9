"""The "EnOS flow instance" extra link: the instance's page in the EnOS console.

As the dbt Cloud provider does, the task pushes the URL to XCom once it knows the instance, and the
link reads it back; the URL comes from the connection's ``console_url`` extra, so without that extra
no link appears. Imported on every DAG parse (the operators name the link): light imports only.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from airflow_enos_provider._compat import BaseOperatorLink, xcom_class
from airflow_enos_provider.exceptions import EnOSError

if TYPE_CHECKING:
    from airflow.sdk import BaseOperator, Context
    from airflow.sdk.types import TaskInstanceKey

__all__ = ["CONSOLE_URL_XCOM_KEY", "EnOSFlowInstanceLink", "push_console_url"]

#: The XCom key the flow instance's console URL is pushed under.
CONSOLE_URL_XCOM_KEY = "flow_instance_url"


class EnOSFlowInstanceLink(BaseOperatorLink):
    """Link a task to the EnOS console page of the flow instance it started, watched or cancelled."""

    name = "EnOS flow instance"

    def get_link(self, operator: BaseOperator, *, ti_key: TaskInstanceKey) -> str:
        """Return the URL the task pushed, or ``""`` (no link) when it pushed none."""
        # Without a console_url the task pushed nothing, and asking for the XCom would put an
        # "XCom not found" error in every task log.
        if not _has_console_url(operator):
            return ""
        url = xcom_class().get_value(key=CONSOLE_URL_XCOM_KEY, ti_key=ti_key)
        return url if isinstance(url, str) else ""


def _has_console_url(operator: Any) -> bool:
    try:
        return operator.hook.settings.console_url is not None
    except Exception:  # noqa: BLE001 - a link must never fail the task; no console_url means no link
        return False


def push_console_url(task: Any, context: Context, flow_inst_id: str, flow_id: object = None) -> None:
    """Push the instance's console URL to XCom when the connection has a ``console_url`` template.

    Best effort: a URL that cannot be made is a warning, never a task failure.

    :param task: the operator or sensor (its ``hook``, ``log``, ``user_id``, ``org_id``).
    :param context: the task's context (its ``ti``).
    :param flow_inst_id: the flow instance.
    :param flow_id: its workflow id; when None and the template needs it, read from the instance.
    """
    from airflow_enos_provider._connection import console_url

    ti = context.get("ti")
    try:
        template = task.hook.settings.console_url
        if template is None or ti is None:
            return
        if flow_id is None and "{flow_id}" in template:
            # No retries: a link is not worth holding up the task during an outage.
            reader = task.hook.with_limits(retries=0)
            instance = reader.get_flow_instance(flow_inst_id, user_id=task.user_id, org_id=task.org_id)
            flow_id = instance.get("flowId")
        org_id = task.org_id or task.hook.settings.org_id
        url = console_url(template, flow_inst_id, flow_id, org_id)
    except EnOSError as err:
        task.log.warning("No console link for EnOS flow instance %s: %s", flow_inst_id, err)
        return
    ti.xcom_push(key=CONSOLE_URL_XCOM_KEY, value=url)
    task.log.info("EnOS flow instance %s in the console: %s", flow_inst_id, url)
