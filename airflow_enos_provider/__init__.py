"""Apache Airflow provider for Envision EnOS: signed API calls and Batch Processing operators."""

from __future__ import annotations

__version__ = "0.1.0"
