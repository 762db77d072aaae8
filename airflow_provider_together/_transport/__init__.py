"""
The hook's internals: everything between a ``TogetherHook`` method and the wire.

Decisions live in pure modules that do no I/O, so both shells share them and most tests need no mocking:

- ``settings``  the ``together`` connection: base-URL normalisation, typed extras, defaults
- ``http``      request specs, request building and error mapping (``raise_for_response``)
- ``retry``     whether to retry a request and how long to wait (job creation has its own, stricter rule)
- ``flow``      multi-step calls as sans-I/O generators, written once and driven twice
- ``ops``       the catalogue of API calls: one definition per endpoint
- ``upload``    the presigned-URL upload flow and the multipart flow for big files

I/O lives in three places only:

- ``drivers``   the sync and async shells that send, sleep and stream
- ``client``    the shared ``AsyncClient`` per (event loop, connection) and the in-flight bound
- ``aio``       that client's transport: aiohttp behind httpx's public transport interface
"""
