"""Apache Airflow provider for Envision EnOS: signed API calls and Batch Processing operators."""

from __future__ import annotations

__all__ = ["__version__"]

__version__ = "0.1.0"
