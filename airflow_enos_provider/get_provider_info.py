"""Describe the provider to Airflow (the ``apache_airflow_provider`` entry point).

Imports nothing but the connection form (plain data): Airflow calls this for every installed
provider on many CLI and UI paths.
"""

from __future__ import annotations

from typing import Any

from airflow_enos_provider._connection_form import CONN_FIELDS, UI_FIELD_BEHAVIOUR

__all__ = ["get_provider_info"]

_PACKAGE_NAME = "airflow-enos-provider"
_INTEGRATION = "EnOS Batch Processing"
# The project's home: no public address yet, so the GitHub address for the project name; pyproject's
# [project.urls] and the README's links use the same (tests/test_packaging.py keeps them one).
_PROJECT_URL = "https://github.com/airflow-enos-provider/airflow-enos-provider"
_DOCUMENTATION_URL = f"{_PROJECT_URL}/blob/main/docs/index.rst"
# Envision's page about the Batch Processing Service API (v2.1), which the provider calls.
_EXTERNAL_DOC_URL = "https://support.enos-iot.com/docs/batch-processing-api/en/2.3.0/v2.1/overview.html"


def _modules(package: str, *names: str) -> list[str]:
    # Every public module of the package's hooks/, operators/, sensors/ and triggers/ is listed, as
    # Airflow's provider checks expect (tests/test_provider_conventions.py compares with the package).
    return [f"airflow_enos_provider.{package}.{name}" for name in names]


def get_provider_info() -> dict[str, Any]:
    """Return the provider-info dict, with the connection form declared for Airflow 3.2+."""
    return {
        "package-name": _PACKAGE_NAME,
        "name": "EnOS",
        "description": "Envision EnOS: signed API calls and Batch Processing workflow operators.",
        # Airflow >= 3.2 fills this from the distribution's Project-URL "Documentation"; given here too.
        "documentation-url": _DOCUMENTATION_URL,
        "integrations": [
            {"integration-name": _INTEGRATION, "external-doc-url": _EXTERNAL_DOC_URL, "tags": ["service"]}
        ],
        "hooks": [
            {"integration-name": _INTEGRATION, "python-modules": _modules("hooks", "enos", "enos_base")}
        ],
        "operators": [
            {
                "integration-name": _INTEGRATION,
                "python-modules": _modules("operators", "flow", "flow_instance"),
            }
        ],
        "sensors": [
            {"integration-name": _INTEGRATION, "python-modules": _modules("sensors", "flow_instance")}
        ],
        "triggers": [
            {
                "integration-name": _INTEGRATION,
                "python-modules": _modules("triggers", "flow_instance", "flow_instance_event"),
            }
        ],
        "extra-links": ["airflow_enos_provider.links.EnOSFlowInstanceLink"],
        "notifications": ["airflow_enos_provider.notifications.flow_instance.EnOSCancelFlowInstanceNotifier"],
        "connection-types": [
            {
                "connection-type": "enos",
                "hook-class-name": "airflow_enos_provider.hooks.enos.EnOSHook",
                "hook-name": "EnOS",
                "conn-fields": CONN_FIELDS,
                "ui-field-behaviour": UI_FIELD_BEHAVIOUR,
            }
        ],
    }
