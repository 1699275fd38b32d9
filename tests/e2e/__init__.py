"""End-to-end tests: Airflow's own scheduler, dag-processor, triggerer and api-server against the emulator."""
