"""The read-only account API for customer service (issue 17): FastAPI on uvicorn.

- :mod:`~billing_sync.api.app`: the application and its routes (``create_app``).
- :mod:`~billing_sync.api.store`: the warehouse reads (a read-only connection pool).
- :mod:`~billing_sync.api.freshness`: how fresh each answer is (``data_as_of``).
- :mod:`~billing_sync.api.keys`: API keys, hashed at rest, with scopes.
- :mod:`~billing_sync.api.cursor`: HMAC-signed keyset cursors.
- :mod:`~billing_sync.api.problems`: ``application/problem+json`` errors (RFC 9457).
- :mod:`~billing_sync.api.middleware`: JSON access logs and the UTF-8 check of the URL.
- :mod:`~billing_sync.api.docs`: ``/docs`` from assets shipped in a package (no CDN).
- :mod:`~billing_sync.api.cli`: ``billing-sync api`` and ``billing-sync api key``.
"""
