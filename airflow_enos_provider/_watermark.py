"""Which ended flow instances an event watcher has announced: its watermark, kept across restarts.

The watcher (:class:`~airflow_enos_provider.triggers.flow_instance_event.EnOSFlowInstanceEventTrigger`)
lists a flow's ended instances each poll and asks its :class:`Watermark` which of them are new. The
watermark holds three things:

- ``since``: no instance that ended before it is ever announced (``start_from``; by default the
  moment the watcher first started, kept so that a restart does not move it);
- ``mark``: the latest end time announced so far (``since`` until the first announcement);
- ``seen``: the id and end time of every instance announced whose end lies within
  :data:`LOOKBACK_MS` of ``mark``.

An instance is new when it ended at or after :attr:`Watermark.horizon` (``mark`` minus the lookback,
never before ``since``) and its id is not in ``seen``. So two instances that end in the same second
are both announced (ids, not times, tell them apart), and an instance that shows up late, after one
that ended later was announced, is still announced as long as it ended within the lookback of that
one. Pruning keeps only ``seen`` entries at or after the horizon, and the horizon never moves back:
an instance announced once is either still in ``seen`` or ended before the horizon, so never
announced again. The listing of each poll must cover every instance that ended at or after the
horizon, which the watcher's search does.

Pure Python: no Airflow, no I/O (the trigger stores :meth:`Watermark.to_json` where it can).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from airflow_enos_provider.status import EnOSFlowInstanceStatus

__all__ = ["LOOKBACK_MS", "Ended", "Watermark"]

#: How long after a later-ending instance was announced one that ended earlier is still announced:
#: an hour, far beyond the seconds by which EnOS may show a finished instance late.
LOOKBACK_MS = 3_600_000
_VERSION = 1


class Ended(NamedTuple):
    """A flow instance in a final status, as one poll listed it.

    :param flow_inst_id: the instance id.
    :param end_ms: its end time, ms since the epoch (``endTime`` read in the tenant's zone).
    :param status: its status.
    :param instance: the FlowInstance as EnOS returned it.
    """

    flow_inst_id: str
    end_ms: int
    status: EnOSFlowInstanceStatus
    instance: Mapping[str, Any]

    @property
    def order(self) -> tuple[int, str]:
        """Return the announcement order: oldest end first, then instance id."""
        return (self.end_ms, self.flow_inst_id)


@dataclass
class Watermark:
    """What a watcher announced so far (see the module docstring for the rule).

    :param since: ms; no instance that ended before it is announced.
    :param mark: ms; the latest end time announced (at least ``since``).
    :param seen: instance id -> end ms of the instances announced within the lookback of ``mark``.
    :param reported_error: the text of the refusal last announced as an error event, until a poll
        succeeds again (so a restart does not announce the same refusal twice).
    """

    since: int
    mark: int = 0
    seen: dict[str, int] = field(default_factory=dict)
    reported_error: str | None = None

    def __post_init__(self) -> None:
        self.mark = max(self.mark, self.since)

    @property
    def horizon(self) -> int:
        """Return the earliest end time of an instance that may still be announced (ms)."""
        return max(self.since, self.mark - LOOKBACK_MS)

    def is_new(self, ended: Ended) -> bool:
        """Say whether an instance is still to be announced."""
        return ended.end_ms >= self.horizon and ended.flow_inst_id not in self.seen

    def take(self, listed: Iterable[Ended]) -> list[Ended]:
        """Return the listed instances not announced yet, oldest first, and record them as announced.

        :param listed: the instances a poll found (repeats and already announced ones are fine).
        """
        new: dict[str, Ended] = {}
        for ended in listed:
            if self.is_new(ended):
                new.setdefault(ended.flow_inst_id, ended)
        taken = sorted(new.values(), key=lambda e: e.order)
        for ended in taken:
            self.seen[ended.flow_inst_id] = ended.end_ms
            self.mark = max(self.mark, ended.end_ms)
        self._forget_older()
        return taken

    def _forget_older(self) -> None:
        # An id that ended before the horizon can never be announced again: it need not be kept.
        horizon = self.horizon
        self.seen = {i: end for i, end in self.seen.items() if end >= horizon}

    def to_json(self) -> dict[str, Any]:
        """Return the watermark as the JSON value an asset state store keeps."""
        return {
            "version": _VERSION,
            "since": self.since,
            "mark": self.mark,
            "seen": dict(sorted(self.seen.items())),
            "reported_error": self.reported_error,
        }

    @classmethod
    def from_json(cls, value: object) -> Watermark | None:
        """Return the watermark a store kept, or None when it holds none this version can read.

        :param value: what :meth:`to_json` returned, read back.
        """
        if not isinstance(value, Mapping) or value.get("version") != _VERSION:
            return None
        since, mark, seen = value.get("since"), value.get("mark"), value.get("seen")
        if not isinstance(since, int) or not isinstance(mark, int) or not isinstance(seen, Mapping):
            return None
        error = value.get("reported_error")
        return cls(
            since=since,
            mark=mark,
            seen={str(i): int(end) for i, end in seen.items() if _is_int(end)},
            reported_error=error if isinstance(error, str) else None,
        )

    @classmethod
    def merged(cls, kept: Iterable[Watermark]) -> Watermark | None:
        """Return one watermark from those several assets kept for the same watcher, or None if none.

        Whatever one of them announced counts as announced: the earliest ``since``, the latest
        ``mark``, every ``seen`` id.

        :param kept: the watermarks read.
        """
        marks = list(kept)
        if not marks:
            return None
        merged = cls(since=min(m.since for m in marks), mark=max(m.mark for m in marks))
        for mark in marks:
            merged.seen.update(mark.seen)
        merged.reported_error = next((m.reported_error for m in marks if m.reported_error), None)
        merged._forget_older()
        return merged


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)
