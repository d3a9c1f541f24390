"""``/api/v1/docs``: the API's browsable documentation (Swagger UI), served by the package, no CDN.

Swagger UI comes from ``swagger-ui-bundle-v2`` (Swagger UI 5, which reads the OpenAPI 3.1 document FastAPI
writes); the page loads it from ``/api/v1/docs/static`` and starts it from our own script (the CSP allows no
inline script). "Authorize" takes an admin or tenant token; a signed-in dashboard session works as is.
"""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import HTMLResponse, Response
from fastapi.staticfiles import StaticFiles

DOCS_PATH = "/api/v1/docs"
ASSETS = f"{DOCS_PATH}/static"

router = APIRouter(include_in_schema=False)


@router.get(DOCS_PATH, response_class=HTMLResponse)
def docs(request: Request) -> Response:
    from .pages import templates

    return templates.TemplateResponse(request, "api_docs.html", {"assets": ASSETS})


def mount(app: FastAPI) -> bool:
    """Serve the docs page and Swagger UI's files; ``False`` (and no page) when the bundle is not installed."""
    try:
        from swagger_ui_bundle import swagger_ui_path  # type: ignore[import-untyped]
    except ImportError:
        return False
    app.mount(ASSETS, StaticFiles(directory=Path(str(swagger_ui_path))), name="swagger-ui")
    app.include_router(router)
    return True
