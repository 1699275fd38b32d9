"""Moved to :mod:`airflow_enos_provider.protocol.envelope`; this name stays for existing imports."""

from __future__ import annotations

from airflow_enos_provider.protocol.envelope import HINTS, parse_reply, parse_retry_after

__all__ = ["HINTS", "parse_reply", "parse_retry_after"]
