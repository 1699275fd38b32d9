"""Describe the provider to Airflow (the ``apache_airflow_provider`` entry point).

Imports nothing: Airflow calls this for every installed provider on many CLI and UI paths.
"""

from __future__ import annotations

from typing import Any

PACKAGE_NAME = "airflow-enos-provider"
INTEGRATION = "EnOS Batch Processing"
# The project's home: no public address yet, so the GitHub address for the project name; pyproject's
# [project.urls] and the README's links use the same (tests/test_packaging.py keeps them one).
PROJECT_URL = "https://github.com/airflow-enos-provider/airflow-enos-provider"
DOCUMENTATION_URL = f"{PROJECT_URL}/blob/main/docs/index.rst"
# Envision's page about the Batch Processing Service API (v2.1), which the provider calls.
EXTERNAL_DOC_URL = "https://support.enos-iot.com/docs/batch-processing-api/en/2.3.0/v2.1/overview.html"


def _modules(package: str, *names: str) -> list[str]:
    # Every module of the package's hooks/, operators/, sensors/ and triggers/ is listed, as
    # Airflow's provider checks expect (tests/test_provider_info.py compares with the package).
    return [f"airflow_enos_provider.{package}.{name}" for name in names]


# The connection form (Airflow >= 3.2 reads it from here; EnOSHook serves it to older versions).
CONN_FIELDS: dict[str, dict[str, Any]] = {
    "org_id": {
        "label": "Organization (OU) ID",
        "description": "The OU id of the EnOS organization; required for Batch Processing calls.",
        "schema": {"type": ["string", "null"]},
    },
    "user_id": {
        "label": "User ID",
        "description": "Default EnOS user id for Batch Processing calls (operators can override it).",
        "schema": {"type": ["string", "null"]},
    },
    "verify": {
        "label": "TLS verification",
        "description": "true (default); false turns certificate checks off; or the path of a CA bundle.",
        "schema": {"type": ["string", "null"], "default": "true"},
    },
    "timeout": {
        "label": "Timeout (seconds)",
        "description": "Seconds to wait for each request to the gateway.",
        "schema": {"type": ["integer", "null"], "default": 30},
    },
    "retries": {
        "label": "Retries",
        "description": "How often a call that failed transiently (network, 429, 5xx) is repeated.",
        "schema": {"type": ["integer", "null"], "default": 3},
    },
    "retry_max_wait": {
        "label": "Retry budget (seconds)",
        "description": "The most seconds spent waiting between the attempts of one call.",
        "schema": {"type": ["integer", "null"], "default": 60},
    },
    "console_url": {
        "label": "Console URL template",
        "description": (
            "Optional: the EnOS console page of a flow instance, using {flow_inst_id}, {flow_id} and "
            "{org_id}; tasks then show an 'EnOS flow instance' link to it."
        ),
        "schema": {"type": ["string", "null"]},
    },
}
UI_FIELD_BEHAVIOUR: dict[str, Any] = {
    # Port stays visible although the URL can carry it: Airflow 3.3.1-3.3.2's Test button refuses a
    # connection stored without one (apache/airflow#73298), and typing it here is the user's way out.
    "hidden-fields": ["schema"],
    "relabeling": {
        "host": "Gateway URL",
        "port": "Gateway port",
        "login": "Access key",
        "password": "Secret key",
    },
    "placeholders": {
        "host": "https://apim-ppe1.envisioniot.com",
        "port": "443 (empty: the URL's own port)",
        "login": "7b51b354-f200-45a9-a349-585d97730c5a",
        "password": "the application's secret key (EnOS console > Application Registration)",
        "org_id": "o15724268424841",
        "user_id": "u15724268424842",
        "verify": "true",
        "timeout": "30",
        "retries": "3",
        "retry_max_wait": "60",
        "console_url": "https://<console host>/<instance page>?id={flow_inst_id}&org={org_id}",
    },
}


def get_provider_info() -> dict[str, Any]:
    """Return the provider-info dict, with the connection form declared for Airflow 3.2+."""
    return {
        "package-name": PACKAGE_NAME,
        "name": "EnOS",
        "description": "Envision EnOS: signed API calls and Batch Processing workflow operators.",
        # Airflow >= 3.2 fills this from the distribution's Project-URL "Documentation"; given here too.
        "documentation-url": DOCUMENTATION_URL,
        "integrations": [
            {"integration-name": INTEGRATION, "external-doc-url": EXTERNAL_DOC_URL, "tags": ["service"]}
        ],
        "hooks": [
            {"integration-name": INTEGRATION, "python-modules": _modules("hooks", "enos", "enos_base")}
        ],
        "operators": [
            {
                "integration-name": INTEGRATION,
                "python-modules": _modules("operators", "failure_logs", "flow_instance", "reattach"),
            }
        ],
        "sensors": [
            {"integration-name": INTEGRATION, "python-modules": _modules("sensors", "flow_instance")}
        ],
        "triggers": [
            {"integration-name": INTEGRATION, "python-modules": _modules("triggers", "flow_instance")}
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


def legacy_form_widgets() -> dict[str, Any]:
    """Return the extra fields as WTForms fields, for the FAB connection form of Airflow < 3.2."""
    from flask_appbuilder.fieldwidgets import BS3TextFieldWidget  # type: ignore[import-not-found]
    from wtforms import IntegerField, StringField  # type: ignore[import-untyped]

    widgets: dict[str, Any] = {}
    for name, spec in CONN_FIELDS.items():
        field_class = IntegerField if "integer" in spec["schema"]["type"] else StringField
        widgets[name] = field_class(
            spec["label"],
            widget=BS3TextFieldWidget(),
            description=spec["description"],
            default=spec["schema"].get("default"),
        )
    return widgets


def legacy_field_behaviour() -> dict[str, Any]:
    """Return the relabelled, hidden and placeholder standard fields in the pre-3.2 spelling."""
    behaviour = UI_FIELD_BEHAVIOUR
    return {
        "hidden_fields": behaviour["hidden-fields"],
        "relabeling": behaviour["relabeling"],
        "placeholders": behaviour["placeholders"],
    }
