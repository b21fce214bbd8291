"""``/api/docs``: Swagger UI over ``/api/openapi.json``, every file served by this app.

Swagger UI's files come from the ``swagger-ui-bundle`` package (a pinned dependency,
Apache-2.0, which ships swagger-ui-dist), so the page works offline and where public
CDNs cannot be reached, and its version changes only with ours.
"""

from __future__ import annotations

from typing import Any

import swagger_ui_bundle
from flask import Flask, send_from_directory

from shop.auth import public
from shop.errors import NotFound
from shop.i18n import _l

#: the only files the page loads
SWAGGER_UI_FILES = frozenset({"swagger-ui.css", "swagger-ui-bundle.js"})

DOCS_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Shanhuo API</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<link rel="stylesheet" href="/api/docs/swagger-ui.css">
</head><body><div id="ui"><p>The OpenAPI document is at
<a href="/api/openapi.json">/api/openapi.json</a>.</p></div>
<script src="/api/docs/swagger-ui-bundle.js"></script>
<script>
if (window.SwaggerUIBundle) SwaggerUIBundle({url: "/api/openapi.json", dom_id: "#ui"});
</script>
</body></html>
"""


def register_docs(app: Flask) -> None:
    @app.get("/api/docs")
    @public
    def api_docs() -> tuple[str, int, dict[str, str]]:
        return DOCS_PAGE, 200, {"Content-Type": "text/html; charset=utf-8"}

    @app.get("/api/docs/<string(maxlength=64):filename>")
    @public
    def api_docs_file(filename: str) -> Any:
        if filename not in SWAGGER_UI_FILES:
            raise NotFound(_l("No such file."))
        return send_from_directory(swagger_ui_bundle.swagger_ui_path, filename, max_age=86400)
