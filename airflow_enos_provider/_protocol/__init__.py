"""The EnOS protocol core: every decision that needs no I/O, and no Airflow, requests or aiohttp.

Signing, reply parsing, the operations and their requests, the token lifecycle, the retry policy and
the call flow live here; ``airflow_enos_provider._transports`` runs the flow over HTTP, and
``airflow_enos_provider.hooks.enos`` is its Airflow face. See ``docs/architecture.md``.
"""
