"""The HTTP server: an API for programs, a search page and a stats page for people (`bertsearch serve`).

Modules: `service` (the application object: models, store, query log), `batching` (the inference worker that
micro-batches queries), `schemas` (request and response bodies, limits), `routes` (the API), `app` (the
FastAPI application, pages and error handling), `static/` (the pages, plain HTML and JavaScript: no build step).
"""
