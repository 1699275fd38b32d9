"""Repeat a cancel operator's cancels through an outage, within its ``cancel_timeout``.

Imported when the task runs, not at DAG parse. A cancel that is given up leaves remote work
running, so transient failures (:func:`~airflow_enos_provider._protocol.retry.retry_reason`) are
repeated, by id, until every instance is stopped or the budget is spent; each attempt is logged.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from airflow_enos_provider._validation import require_flow_inst_ids
from airflow_enos_provider.exceptions import EnOSError

if TYPE_CHECKING:
    from airflow_enos_provider.operators.flow_instance import CancelFlowInstanceOperator

Outcomes = dict[str, "dict[str, Any] | EnOSError"]


def cancel_within_budget(op: CancelFlowInstanceOperator) -> Outcomes:
    """Cancel the operator's instances, repeating transient failures for ``op.cancel_timeout`` seconds.

    :param op: the operator (its ids or query, identity and limits).
    :return: per id, the outcome or the error that stopped it, as the hook's bulk cancel returns it.
    """
    from airflow_enos_provider._protocol.retry import Outage, retry_reason

    ids = None if op.flow_inst_id is None else require_flow_inst_ids(op.flow_inst_id)
    outage = Outage(op.cancel_timeout, op.poll_interval)
    outcomes: Outcomes = {}
    attempt = 0
    while True:
        attempt += 1
        try:
            got = _attempt(op, ids)
        except EnOSError as err:  # the search or the token, before any cancel
            got, failed = {}, err
        else:
            outcomes.update(got)
            transient = {i: e for i, e in got.items() if isinstance(e, EnOSError) and retry_reason(e, True)}
            if not transient:
                if attempt > 1:
                    op.log.info("Cancel attempt %s reached EnOS for every flow instance", attempt)
                return outcomes
            ids, failed = list(transient), next(iter(transient.values()))
        step = outage.failed(failed, time.monotonic())
        which = ", ".join(ids) if ids else f"of flow_id={op.flow_id} expression={op.expression}"
        op.log.warning(
            "Cancel attempt %s of EnOS flow instance(s) %s failed (%s) after %.0f s of trying; %s: %s",
            attempt, which, step.reason, step.lasted,
            "giving up" if step.give_up else f"next attempt in {step.pause:.1f} s", failed,
        )  # fmt: skip
        if step.give_up:
            if not got:
                raise failed
            return outcomes
        time.sleep(step.pause)


def _attempt(op: CancelFlowInstanceOperator, ids: list[str] | None) -> Outcomes:
    by_query = ids is None
    outcomes = op.hook.cancel_flow_instances(
        ids,
        flow_id=op.flow_id if by_query else None,
        expression=op.expression if by_query else None,
        only_active=op.only_active,
        max_concurrency=op.max_concurrency,
        user_id=op.user_id,
        org_id=op.org_id,
    )
    if by_query:
        which = "active " if op.only_active else ""
        op.log.info(
            "Found %s %sEnOS flow instance(s) for flow_id=%s expression=%s: %s",
            len(outcomes), which, op.flow_id, op.expression, ", ".join(outcomes) or "none",
        )  # fmt: skip
    return outcomes
