"""Run the protocol core's flows over HTTP: two drivers, and one transport per HTTP library.

``requests`` (sync, in workers) and ``aiohttp`` (async, in triggerers) are imported only by their
own transport module, which the hook imports only when a task runs.
"""
