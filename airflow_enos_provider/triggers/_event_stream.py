"""The event watcher's ack-mode producer (Airflow 3.3+; imported only by its shared-stream manager).

Ack mode is what lets a watermark follow only stored events: the triggerer calls :meth:`advance`
with a poll once every watcher that received it moved past it and Airflow confirmed that the events
they fired from it were written to the metadata database. Only then are their watermarks written.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Sequence
from typing import Any

from airflow.triggers.shared_stream import AdvanceItem, SharedStreamProducer

log = logging.getLogger(__name__)


class SnapshotProducer(SharedStreamProducer):
    """Yield each poll as its own broker payload; write the watchers' watermarks when it is resolved.

    :param polls: the shared poll (``open_shared_stream``), one snapshot per poll.
    """

    def __init__(self, polls: AsyncIterator[Any]) -> None:
        self._polls = polls

    async def open_stream(self) -> AsyncIterator[tuple[Any, Any]]:
        from airflow_enos_provider._transports.aio import clients_lease

        async with clients_lease():
            async for snapshot in self._polls:
                yield snapshot, snapshot

    async def advance(self, batch: Sequence[AdvanceItem]) -> None:
        for item in batch:
            snapshot = item.broker_payload
            if item.outcome.failed or item.outcome.rejected:
                # Some watcher's events were not confirmed stored: it fails and starts again from its
                # stored watermark, so none is written for this poll (a repeat, never a miss).
                log.warning(
                    "EnOS flow %s: poll %s not confirmed by every watcher (%s); watermarks not advanced",
                    snapshot.flow_id, snapshot.seq, item.outcome,
                )  # fmt: skip
                snapshot.commits.clear()
                continue
            await snapshot.commit()

    async def aclose(self) -> None:
        aclose = getattr(self._polls, "aclose", None)
        if aclose is not None:
            await aclose()
