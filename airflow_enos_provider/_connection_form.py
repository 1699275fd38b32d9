"""The ``enos`` connection form: its extra fields and the standard fields' labels, in both spellings.

Plain data and two functions: :mod:`airflow_enos_provider.get_provider_info` declares the form to
Airflow >= 3.2 from here, and :class:`~airflow_enos_provider.hooks.enos.EnOSHook` serves it to older
versions (which import WTForms only then).
"""

from __future__ import annotations

from typing import Any

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
