"""`/openapi.json` and the `/docs` UI, served from swagger-ui-bundle's local files."""

from __future__ import annotations

import html
import json
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any

from starlette.responses import HTMLResponse, Response
from starlette.staticfiles import StaticFiles
from starlette.types import Receive, Scope, Send

from gateway.jsonout import dump_data

OPENAPI_PATH = "/openapi.json"
DOCS_PATH = "/docs"
STATIC_PREFIX = "/docs/static"

_PAGE = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>{title}</title>
<link rel="stylesheet" href="{static}/swagger-ui.css">
<link rel="icon" type="image/png" href="{static}/favicon-32x32.png">
</head>
<body>
<div id="swagger-ui"></div>
<script src="{static}/swagger-ui-bundle.js"></script>
<script>
window.ui = SwaggerUIBundle({{
  url: {spec},
  dom_id: "#swagger-ui",
  deepLinking: true,
  validatorUrl: null
}});
</script>
</body>
</html>
"""


@cache
def swagger_dir() -> Path:
    """The folder of Swagger UI's static files inside the swagger-ui-bundle package."""
    vendor = Path(str(resources.files("swagger_ui_bundle"))) / "vendor"
    found = sorted(vendor.glob("swagger-ui-*"))
    if not found:
        raise RuntimeError(f"swagger-ui-bundle ships no Swagger UI under {vendor}")
    return found[-1]


class Docs:
    """The documentation endpoints of one listener."""

    def __init__(self, title: str, spec: dict[str, Any]) -> None:
        self._spec = dump_data(spec)
        self._page = _PAGE.format(
            title=html.escape(title), static=STATIC_PREFIX, spec=json.dumps(OPENAPI_PATH)
        )
        self._static = StaticFiles(directory=swagger_dir())

    def handles(self, path: str) -> bool:
        return path in (OPENAPI_PATH, DOCS_PATH, DOCS_PATH + "/") or path.startswith(
            STATIC_PREFIX + "/"
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope["path"]
        if path == OPENAPI_PATH:
            response: Response = Response(self._spec, media_type="application/json")
        elif path.startswith(STATIC_PREFIX + "/"):
            root = scope.get("root_path", "") + STATIC_PREFIX
            await self._static({**scope, "root_path": root}, receive, send)
            return
        else:
            response = HTMLResponse(self._page)
        await response(scope, receive, send)
