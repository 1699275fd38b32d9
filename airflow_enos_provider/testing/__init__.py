"""Test your DAGs against the EnOS emulator: the pytest plugin and what its fixtures hand out.

The plugin is opt-in: a project loads :mod:`.pytest_plugin` with
``pytest_plugins = ["airflow_enos_provider.testing.pytest_plugin"]`` in its top-level conftest, or
``-p airflow_enos_provider.testing.pytest_plugin`` (in its pytest ``addopts``); installing the
provider loads nothing into anyone's pytest run. It imports nothing of Airflow or the emulator until
a test asks for a fixture; :mod:`.fixtures` holds the parts that do.
"""

from __future__ import annotations

# The API is in the modules: the plugin and its fixtures.
__all__: list[str] = []
