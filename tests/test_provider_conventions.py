"""Airflow's own checks for providers, run here: they live in Airflow's repository (its prek hooks and
``run_provider_yaml_files_check.py``), so their rules are restated against this package.

- module completeness: every module of hooks/, operators/, sensors/ and triggers/ is listed in
  ``get_provider_info`` (and nothing listed is missing);
- example DAGs carry the ``example`` tag (``check_example_dags_have_tags``);
- template fields are set in ``__init__`` straight from the argument of the same name
  (``validate_operators_init``), so what the user templated is what is rendered;
- ``deferrable`` defaults to ``conf.getboolean("operators", "default_deferrable", fallback=False)``
  (``check_deferrable_default``);
- the project URLs are one scheme: pyproject's ``[project.urls]``, the provider info and the README.

The provider-info schema is checked in tests/test_provider_info.py.
"""

from __future__ import annotations

import ast
import importlib.metadata
import pkgutil
import re
import tomllib

import pytest

import airflow_enos_provider
from airflow_enos_provider.get_provider_info import _DOCUMENTATION_URL, _PROJECT_URL, get_provider_info
from tests.conftest import ROOT

PACKAGE = ROOT / "airflow_enos_provider"
LISTED_KINDS = ("hooks", "operators", "sensors", "triggers")


def _package_modules(kind: str) -> set[str]:
    package = __import__(f"airflow_enos_provider.{kind}", fromlist=["_"])
    # The public modules: private ones (``_reattach``) are no API of the provider.
    modules = pkgutil.iter_modules(package.__path__)
    return {f"{package.__name__}.{m.name}" for m in modules if not m.name.startswith("_")}


@pytest.mark.parametrize("kind", LISTED_KINDS)
def test_every_module_of_each_kind_is_listed_in_the_provider_info(kind):
    listed = {module for entry in get_provider_info()[kind] for module in entry["python-modules"]}
    assert listed == _package_modules(kind)


def test_the_integration_has_its_external_doc_url():
    (integration,) = get_provider_info()["integrations"]
    assert integration["external-doc-url"].startswith(
        "https://support.enos-iot.com/docs/batch-processing-api/"
    )


def _dag_calls(tree: ast.AST) -> list[ast.Call]:
    calls = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and getattr(node.func, "id", getattr(node.func, "attr", None)) in (
            "DAG",
            "dag",
        ):
            calls.append(node)
    return calls


def _example_dag_files():
    return sorted((ROOT / "example_dags").glob("example_*.py"))


@pytest.mark.parametrize("path", _example_dag_files(), ids=lambda p: p.name)
def test_each_example_dag_has_the_example_tag(path):
    calls = _dag_calls(ast.parse(path.read_text(encoding="utf-8")))
    assert calls, f"{path.name} defines no DAG"
    for call in calls:
        tags = next((kw.value for kw in call.keywords if kw.arg == "tags"), None)
        assert isinstance(tags, ast.List | ast.Tuple | ast.Set), f"{path.name}:{call.lineno} has no tags"
        assert "example" in [getattr(t, "value", None) for t in tags.elts], f"{path.name}:{call.lineno}"


def _classes_with_template_fields():
    for path in sorted(PACKAGE.rglob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for cls in (n for n in tree.body if isinstance(n, ast.ClassDef)):
            fields = None
            for stmt in cls.body:
                target = getattr(stmt, "target", None) or (getattr(stmt, "targets", None) or [None])[0]
                if getattr(target, "id", None) == "template_fields":
                    fields = [elt.value for elt in stmt.value.elts]  # type: ignore[union-attr]
            init = next(
                (s for s in cls.body if isinstance(s, ast.FunctionDef) and s.name == "__init__"), None
            )
            if fields is not None and init is not None:
                yield pytest.param(fields, init, id=f"{path.relative_to(PACKAGE)}:{cls.name}")


@pytest.mark.parametrize(("fields", "init"), list(_classes_with_template_fields()))
def test_template_fields_are_set_straight_from_the_argument_of_the_same_name(fields, init):
    params = {a.arg for a in [*init.args.args, *init.args.kwonlyargs]}
    assigned: dict[str, list[str]] = {}
    for node in ast.walk(init):
        if isinstance(node, ast.Assign | ast.AnnAssign):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            for target in targets:
                if isinstance(target, ast.Attribute) and getattr(target.value, "id", None) == "self":
                    assigned.setdefault(target.attr, []).append(ast.unparse(node.value))  # type: ignore[arg-type]
    for name in fields:
        assert name in params, f"template field {name} is not an __init__ argument"
        assert assigned.get(name) == [name], f"self.{name} must be set once, to the argument {name}"


def _deferrable_defaults():
    for path in sorted(PACKAGE.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.FunctionDef) and node.name == "__init__":
                args = node.args
                positional = list(zip(reversed(args.args), reversed(args.defaults), strict=False))
                for arg, default in [*positional, *zip(args.kwonlyargs, args.kw_defaults, strict=True)]:
                    if arg.arg == "deferrable":
                        yield pytest.param(default, id=f"{path.relative_to(PACKAGE)}:{node.lineno}")


def test_every_deferrable_argument_defaults_the_way_airflows_check_expects():
    defaults = list(_deferrable_defaults())
    assert len(defaults) == 3  # the trigger and cancel operators and the sensor
    for param in defaults:
        (default,) = param.values
        assert default is not None and ast.unparse(default) == (
            "conf.getboolean('operators', 'default_deferrable', fallback=False)"
        ), param.id


def test_the_project_urls_are_one_scheme_and_airflow_reads_the_documentation_url():
    urls = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]["urls"]
    assert set(urls) == {"Documentation", "Changelog", "Source", "Issue tracker"}
    assert all(url.startswith(_PROJECT_URL) for url in urls.values())
    assert urls["Documentation"] == _DOCUMENTATION_URL == get_provider_info()["documentation-url"]
    # The installed distribution's metadata, where Airflow >= 3.2 reads "documentation-url" from.
    metadata = importlib.metadata.metadata("airflow-enos-provider").get_all("Project-URL")
    assert f"Documentation, {_DOCUMENTATION_URL}" in metadata


def test_the_readme_links_are_absolute_so_they_work_on_the_package_index():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    targets = re.findall(r"\]\(([^)\s]+)\)", readme)
    assert len(targets) > 20
    relative = [t for t in targets if not t.startswith(("https://", "http://", "#"))]
    assert relative == []
    for target in (t for t in targets if t.startswith(_PROJECT_URL + "/")):
        path = re.sub(r"^/(blob|raw)/main/", "", target[len(_PROJECT_URL) :]).split("#")[0]
        assert (ROOT / path).exists(), target


def test_the_package_version_is_the_distributions():
    assert importlib.metadata.version("airflow-enos-provider") == airflow_enos_provider.__version__
