"""`make package`'s check (scripts/check_dist.py): what a wheel and an sdist must carry."""

from __future__ import annotations

import importlib.util
import io
import tarfile
import tomllib
import zipfile

from tests.conftest import ROOT

spec = importlib.util.spec_from_file_location("check_dist", ROOT / "scripts" / "check_dist.py")
assert spec is not None and spec.loader is not None
check_dist = importlib.util.module_from_spec(spec)
spec.loader.exec_module(check_dist)

ENTRY_POINTS = (
    "[apache_airflow_provider]\nprovider_info = airflow_enos_provider.get_provider_info:get_provider_info\n"
)
METADATA = "".join(
    f"Project-URL: {label}, https://example.invalid/{label}\n" for label in check_dist.PROJECT_URLS
)
WHEEL_FILES = {
    "airflow_enos_provider/emulator/demo_seed.json": "{}",
    "airflow_enos_provider/testing/pytest_plugin.py": "",
    "airflow_enos_provider-0.1.0.dist-info/METADATA": "Name: airflow-enos-provider\n" + METADATA,
    "airflow_enos_provider-0.1.0.dist-info/licenses/LICENSE": "Apache License",
    "airflow_enos_provider-0.1.0.dist-info/licenses/NOTICE": "notice",
    "airflow_enos_provider-0.1.0.dist-info/entry_points.txt": ENTRY_POINTS,
}
SDIST_FILES = ["LICENSE", "NOTICE", "airflow_enos_provider/emulator/demo_seed.json", "README.md"]


def build(dist, wheel_files, sdist_files):
    dist.mkdir()
    with zipfile.ZipFile(dist / "airflow_enos_provider-0.1.0-py3-none-any.whl", "w") as wheel:
        for name, text in wheel_files.items():
            wheel.writestr(name, text)
    with tarfile.open(dist / "airflow_enos_provider-0.1.0.tar.gz", "w:gz") as sdist:
        for name in sdist_files:
            sdist.addfile(tarfile.TarInfo(f"airflow_enos_provider-0.1.0/{name}"), io.BytesIO(b""))


def test_complete_archives_pass(tmp_path, capsys):
    build(tmp_path / "dist", WHEEL_FILES, SDIST_FILES)
    assert check_dist.main(str(tmp_path / "dist")) == 0
    assert "carry LICENSE, NOTICE, the demo seed, the pytest plugin and the project URLs" in (
        capsys.readouterr().out
    )


def test_each_missing_piece_is_named(tmp_path, capsys):
    wheel_files = {k: v for k, v in WHEEL_FILES.items() if not k.endswith(("NOTICE", "entry_points.txt"))}
    build(tmp_path / "dist", wheel_files, ["NOTICE", "README.md"])
    assert check_dist.main(str(tmp_path / "dist")) == 1
    assert capsys.readouterr().err.splitlines() == [
        "airflow_enos_provider-0.1.0-py3-none-any.whl lacks .dist-info/licenses/NOTICE",
        "airflow_enos_provider-0.1.0-py3-none-any.whl lacks the apache_airflow_provider entry point "
        "'provider_info = airflow_enos_provider.get_provider_info:get_provider_info'",
        "airflow_enos_provider-0.1.0.tar.gz lacks /LICENSE",
        "airflow_enos_provider-0.1.0.tar.gz lacks /airflow_enos_provider/emulator/demo_seed.json",
    ]


def test_a_pytest11_entry_point_a_dev_extra_or_a_missing_url_fails(tmp_path, capsys):
    wheel_files = dict(WHEEL_FILES)
    wheel_files["airflow_enos_provider-0.1.0.dist-info/entry_points.txt"] = (
        ENTRY_POINTS + "[pytest11]\nenos = airflow_enos_provider.testing.pytest_plugin\n"
    )
    wheel_files["airflow_enos_provider-0.1.0.dist-info/METADATA"] = (
        "Provides-Extra: openlineage\nProvides-Extra: test\n"
        + METADATA.replace("Project-URL: Changelog", "Project-URL: News")
    )
    build(tmp_path / "dist", wheel_files, SDIST_FILES)
    assert check_dist.main(str(tmp_path / "dist")) == 1
    wheel = "airflow_enos_provider-0.1.0-py3-none-any.whl"
    assert capsys.readouterr().err.splitlines() == [
        f"{wheel} lacks Project-URL Changelog",
        f"{wheel} has a pytest11 entry point (the pytest plugin is opt-in)",
        f"{wheel} publishes a development extra (Provides-Extra: test)",
    ]


def test_the_entry_point_checked_is_the_one_pyproject_declares():
    text = (ROOT / "pyproject.toml").read_text(encoding="utf-8")
    assert (
        "[project.entry-points.apache_airflow_provider]\n"
        'provider_info = "airflow_enos_provider.get_provider_info:get_provider_info"'
    ) in text
    project = tomllib.loads(text)["project"]
    assert set(project["entry-points"]) == {"apache_airflow_provider"}  # no pytest11: the plugin is opt-in
    # Development needs are dependency groups; the one extra is for users (docs/howto/lineage.rst).
    assert set(project["optional-dependencies"]) == set(check_dist.USER_EXTRAS) == {"openlineage"}
    assert 'license-files = ["LICENSE", "NOTICE"]' in text


def test_the_license_is_the_apache_2_0_text_unchanged():
    import hashlib

    text = (ROOT / "LICENSE").read_bytes()
    # The SHA-256 of https://www.apache.org/licenses/LICENSE-2.0.txt, which pyproject's SPDX id names.
    digest = hashlib.sha256(text).hexdigest()
    assert digest == "cfc7749b96f63bd31c3c42b5c471bf756814053e847c10f3eb003417bc523d30"
    assert "Apache License, Version 2.0" in (ROOT / "NOTICE").read_text(encoding="utf-8")
