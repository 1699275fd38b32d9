# The project's top-level conftest.py: load the EnOS pytest plugin (it is opt-in).
pytest_plugins = ["airflow_enos_provider.testing.pytest_plugin"]
