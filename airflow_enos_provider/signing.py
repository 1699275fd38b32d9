"""Moved to :mod:`airflow_enos_provider.protocol.signing`; this name stays for existing imports."""

from __future__ import annotations

from airflow_enos_provider.protocol.signing import params_data, request_signature, token_encryption

__all__ = ["params_data", "request_signature", "token_encryption"]
