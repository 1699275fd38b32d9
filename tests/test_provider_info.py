"""The provider registers with Airflow: entry point, schema, CLI views, connection form."""

from __future__ import annotations

import importlib.metadata
import json
from pathlib import Path

import airflow
import jsonschema
import pytest

from airflow_enos_provider import __version__
from airflow_enos_provider._connection_form import CONN_FIELDS, UI_FIELD_BEHAVIOUR
from airflow_enos_provider.get_provider_info import get_provider_info
from airflow_enos_provider.hooks.enos import EnOSHook
from tests.airflow_cli import airflow_cli, last_json_line


def test_provider_info_validates_against_airflow_schema():
    schema = json.loads((Path(airflow.__file__).parent / "provider_info.schema.json").read_text())
    jsonschema.validate(get_provider_info(), schema)


def test_package_name_is_the_installed_distribution_and_entry_point_is_registered():
    info = get_provider_info()
    dist = importlib.metadata.distribution(info["package-name"])
    assert dist.metadata["Name"] == info["package-name"] == "airflow-enos-provider"
    assert dist.version == __version__
    points = [ep for ep in dist.entry_points if ep.group == "apache_airflow_provider"]
    assert [ep.load() for ep in points] == [get_provider_info]


def test_modules_and_hook_class_named_in_the_dict_exist():
    info = get_provider_info()
    for section in ("hooks", "operators", "sensors", "triggers"):
        for entry in info[section]:
            for module in entry["python-modules"]:
                __import__(module)
    for path in [*info["notifications"], *info["extra-links"]]:
        module, _, name = path.rpartition(".")
        assert getattr(__import__(module, fromlist=[name]), name).__name__ == name
    (conn_type,) = info["connection-types"]
    module, _, name = conn_type["hook-class-name"].rpartition(".")
    hook = getattr(__import__(module, fromlist=[name]), name)
    assert hook is EnOSHook
    assert (hook.conn_type, hook.default_conn_name, hook.conn_name_attr, hook.hook_name) == (
        "enos",
        "enos_default",
        "enos_conn_id",
        "EnOS",
    )


def test_legacy_ui_behaviour_matches_the_declarative_one():
    legacy = EnOSHook.get_ui_field_behaviour()
    assert legacy == {
        "hidden_fields": UI_FIELD_BEHAVIOUR["hidden-fields"],
        "relabeling": UI_FIELD_BEHAVIOUR["relabeling"],
        "placeholders": UI_FIELD_BEHAVIOUR["placeholders"],
    }
    assert legacy["hidden_fields"] == ["schema"]
    assert set(legacy["relabeling"]) == {"host", "port", "login", "password"}
    assert set(CONN_FIELDS) == {
        "org_id",
        "user_id",
        "verify",
        "timeout",
        "retries",
        "retry_max_wait",
        "console_url",
    }
    assert all(CONN_FIELDS[name]["description"] for name in CONN_FIELDS)


def _fab_installed() -> bool:
    try:
        import flask_appbuilder  # noqa: F401
        import wtforms  # noqa: F401
    except ImportError:
        return False
    return True


def test_legacy_form_widgets_are_wtforms_fields_where_the_fab_ui_is_installed():
    # Airflow < 3.2 builds the form from these, with Flask-AppBuilder installed (the 3.0 lane of
    # `make test-matrix` has it); 3.2+ reads conn-fields instead and treats this ImportError as
    # "no widgets" (providers_manager checks e.name).
    if not _fab_installed():
        with pytest.raises(ImportError) as caught:
            EnOSHook.get_connection_form_widgets()
        assert caught.value.name in ("flask_appbuilder", "wtforms")
        return
    widgets = EnOSHook.get_connection_form_widgets()
    assert set(widgets) == set(CONN_FIELDS)
    for name, field in widgets.items():
        assert field.args == (CONN_FIELDS[name]["label"],)
        assert field.kwargs["description"] == CONN_FIELDS[name]["description"]
        assert field.kwargs["default"] == CONN_FIELDS[name]["schema"].get("default")
    assert widgets["timeout"].field_class.__name__ == "IntegerField"
    assert widgets["org_id"].field_class.__name__ == "StringField"


def _hook_info(connection_type: str):
    try:
        from airflow.sdk.providers_manager_runtime import ProvidersManagerTaskRuntime
    except ImportError:  # Airflow < 3.2: one ProvidersManager serves the task runtime too
        from airflow.providers_manager import ProvidersManager as ProvidersManagerTaskRuntime
    return ProvidersManagerTaskRuntime().hooks[connection_type]


def test_providers_manager_exposes_the_enos_form():
    from airflow.providers_manager import ProvidersManager

    manager = ProvidersManager()
    assert manager.providers["airflow-enos-provider"].version == __version__
    hook_info = _hook_info("enos")
    assert hook_info.hook_class_name == "airflow_enos_provider.hooks.enos.EnOSHook"
    assert hook_info.connection_id_attribute_name == "enos_conn_id"
    widgets = manager.connection_form_widgets
    for name in CONN_FIELDS:
        widget = widgets[f"extra__enos__{name}"]
        assert widget.package_name == "airflow-enos-provider" and widget.field_name == name
        # Airflow 3.0/3.1 record the widgets' class by its bare name, 3.2+ by its dotted path.
        assert widget.hook_class_name in ("airflow_enos_provider.hooks.enos.EnOSHook", "EnOSHook")
    behaviour = manager.field_behaviours["enos"]
    assert behaviour["hidden_fields"] == ["schema"]
    assert behaviour["relabeling"]["password"] == "Secret key"


def _fab_connection_form() -> None:
    # Airflow 2.11's webserver builds its ConnectionForm class from the hook's widgets.
    from airflow.www.forms import create_connection_form_class

    form_class = create_connection_form_class()
    for name, spec in CONN_FIELDS.items():
        field = getattr(form_class, f"extra__enos__{name}")
        assert field.args == (spec["label"],)
        assert field.kwargs["description"] == spec["description"]
        assert field.kwargs["default"] == spec["schema"].get("default")


def test_the_ui_connection_form_shows_the_enos_fields():
    # What the api-server sends the UI's connection form: built from conn-fields on Airflow 3.2+ and
    # from the hook's widgets and field behaviour on 3.0/3.1 (and, in 2.11, its Flask form).
    if airflow.__version__.startswith("2."):
        return _fab_connection_form()
    from airflow.api_fastapi.core_api.services.ui.connections import HookMetaService

    (meta,) = [m.model_dump() for m in HookMetaService.hook_meta_data() if m.connection_type == "enos"]
    assert meta["hook_class_name"] == "airflow_enos_provider.hooks.enos.EnOSHook"
    extra = meta["extra_fields"]
    assert set(extra) == set(CONN_FIELDS)
    for name, field in extra.items():
        assert field["schema"]["title"] == CONN_FIELDS[name]["label"]
        assert field["description"] == CONN_FIELDS[name]["description"]
    assert extra["timeout"]["schema"]["type"] == ["integer", "null"]
    standard = meta["standard_fields"]
    assert standard["password"]["title"] == "Secret key"
    assert standard["host"]["placeholder"] == UI_FIELD_BEHAVIOUR["placeholders"]["host"]
    assert standard["url_schema"]["hidden"] and not standard["port"]["hidden"]


def _airflow_cli(*args: str) -> list[dict]:
    done = airflow_cli(*args, "--output", "json")
    assert done.returncode == 0, done.stderr[-2000:]
    return last_json_line(done.stdout)


def test_airflow_cli_lists_the_provider_and_the_connection_type():
    providers = {row["package_name"]: row for row in _airflow_cli("providers", "list")}
    assert providers["airflow-enos-provider"]["version"] == __version__
    hooks = {row["connection_type"]: row for row in _airflow_cli("providers", "hooks")}
    assert hooks["enos"]["class"] == "airflow_enos_provider.hooks.enos.EnOSHook"


def test_airflow_cli_lists_the_flow_instance_link():
    links = [row["extra_link_class_name"] for row in _airflow_cli("providers", "links")]
    assert "airflow_enos_provider.links.EnOSFlowInstanceLink" in links
