"""`create_app(collection, settings)`: the FastAPI app of `crossmodal serve`.

Layout: `routes.py` (thin JSON routes) -> `service.py` (one call of the Python API each) ->
`crossmodal.Collection` / `crossmodal.dogs`. This module wires them together with the page in
`static/`, offline API docs, the upload size limit and the error replies, which are always
`{"detail": "one line"}` with a 4xx status.
"""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.middleware.cors import CORSMiddleware
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.openapi.utils import get_openapi
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse
from fastapi.staticfiles import StaticFiles
from starlette.exceptions import HTTPException as StarletteHTTPException

from crossmodal import __version__
from crossmodal.collection import Collection
from crossmodal.errors import (
    CatalogBusy,
    CollectionBusy,
    CollectionError,
    CrossmodalError,
    ImageLoadError,
)
from crossmodal.index.catalog import CatalogDamaged, database_error
from crossmodal.providers import ProviderError, ProviderNotConfigured
from crossmodal.web.errors import Rejected
from crossmodal.web.guards import RequestGuardMiddleware
from crossmodal.web.routes import (
    api_router,
    dogs_router,
    generation_router,
    validation_line,
    write_router,
)
from crossmodal.web.service import WebService
from crossmodal.web.settings import WebSettings
from crossmodal.web.uploads import MULTIPART_SLACK, BodyLimitMiddleware

__all__ = ["STATIC_DIR", "create_app"]

STATIC_DIR = Path(__file__).parent / "static"

#: The page loads nothing from elsewhere; a CSP that says so also stops injected scripts.
PAGE_CSP = (
    "default-src 'self'; img-src 'self' blob: data:; style-src 'self'; script-src 'self'; "
    "connect-src 'self'; object-src 'none'; base-uri 'none'; frame-ancestors 'none'"
)


def create_app(
    collection: Collection, settings: WebSettings | None = None, warm_up: bool | None = None
) -> FastAPI:
    """The web app over one open collection. `warm_up` (default: settings.warm_up) loads the
    model now, so that a model mismatch fails here rather than on the first query."""
    settings = settings or WebSettings()
    service = WebService(collection, settings)
    if settings.warm_up if warm_up is None else warm_up:
        service.warm_up()
    app = FastAPI(
        title="crossmodal",
        version=__version__,
        description=(
            "Search a photo collection four ways (text->image, text->text, image->image, "
            "image->text) and, with the dog edition, ask about dog breeds. Every error is "
            '`{"detail": "reason"}` (schema ErrorBody) with a 4xx status, or 503 when busy '
            "(Retry-After) or when the catalogue is damaged. Writes need `Authorization: "
            "Bearer <token>` (the server's --token); with --token-reads, reads do too. Hits "
            "carry paths inside the indexed folder; `absolute=true` with the token, full ones. "
            "Only requests whose Host names this server are answered (--allowed-host)."
        ),
        docs_url=None,  # served below from local assets: the default loads them from a CDN
        redoc_url=None,
        lifespan=_lifespan,
    )
    app.state.service = service
    app.state.settings = settings
    app.add_middleware(BodyLimitMiddleware, max_bytes=settings.max_upload_bytes + MULTIPART_SLACK)
    if settings.cors_origins:  # none by default: the page and the API share one origin
        app.add_middleware(
            CORSMiddleware,
            allow_origins=list(settings.cors_origins),
            allow_methods=["GET", "POST", "DELETE"],
            allow_headers=["Authorization", "Content-Type"],
        )
    # added last, so outermost: a request for another Host is refused before anything runs
    app.add_middleware(RequestGuardMiddleware, allowed_hosts=settings.allowed_hosts)
    _add_error_handlers(app)
    app.include_router(api_router)
    if service.capabilities()["dogs"]:
        app.include_router(dogs_router)
    app.include_router(generation_router)
    app.include_router(write_router)
    _add_docs(app)
    _add_page(app)
    _patch_openapi(app)
    return app


def _patch_openapi(app: FastAPI) -> None:
    """What FastAPI cannot declare from the signatures: an upload may not be empty."""

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = get_openapi(
                title=app.title,
                version=app.version,
                description=app.description,
                routes=app.routes,
            )
            for component in schema.get("components", {}).get("schemas", {}).values():
                upload = component.get("properties", {}).get("file", {})
                if upload.get("format") == "binary" or "contentMediaType" in upload:
                    upload["minLength"] = 1
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]  # FastAPI's documented way to customise the schema


@contextlib.asynccontextmanager
async def _lifespan(app: FastAPI) -> AsyncIterator[None]:
    yield
    app.state.service.close()  # stops the query-encoding threads


def _error(status: int, detail: str, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"detail": detail}, status_code=status, headers=headers)


def _add_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(Rejected)
    async def rejected(request: Request, exc: Rejected) -> JSONResponse:
        headers = dict(exc.headers or {})
        if exc.status == 401:
            headers["WWW-Authenticate"] = "Bearer"
        return _error(exc.status, exc.detail, headers or None)

    @app.exception_handler(CatalogDamaged)
    async def damaged(request: Request, exc: CatalogDamaged) -> JSONResponse:
        return _error(503, str(exc))

    @app.exception_handler(sqlite3.DatabaseError)
    async def database(request: Request, exc: sqlite3.DatabaseError) -> JSONResponse:
        # the catalogue's own methods say this in their words; a read elsewhere, in these
        service: WebService = request.app.state.service
        return _error(503, str(database_error(service.collection.catalog.path, exc)))

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        return _error(422, validation_line(exc.errors()))

    @app.exception_handler(ImageLoadError)
    async def bad_image(request: Request, exc: ImageLoadError) -> JSONResponse:
        return _error(422, str(exc))

    @app.exception_handler(CollectionBusy)
    async def collection_busy(request: Request, exc: CollectionBusy) -> JSONResponse:
        # another process holds the writer lock: a conflict the client may retry later
        return _error(409, str(exc))

    @app.exception_handler(CatalogBusy)
    async def catalog_busy(request: Request, exc: CatalogBusy) -> JSONResponse:
        # the catalogue is locked by a writer for too long: the service is briefly unavailable
        return _error(503, str(exc), {"Retry-After": "5"})

    @app.exception_handler(CollectionError)
    async def collection_error(request: Request, exc: CollectionError) -> JSONResponse:
        return _error(400, str(exc))

    @app.exception_handler(ProviderError)
    async def provider_error(request: Request, exc: ProviderError) -> JSONResponse:
        # no key: the request cannot be served as configured (what to set); else the paid
        # service failed: a bad gateway, still one line and never a 500
        return _error(400 if isinstance(exc, ProviderNotConfigured) else 502, str(exc))

    @app.exception_handler(CrossmodalError)
    async def crossmodal_error(request: Request, exc: CrossmodalError) -> JSONResponse:
        return _error(400, str(exc))

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        detail = exc.detail if isinstance(exc.detail, str) else str(exc.detail)
        headers = getattr(exc, "headers", None)
        if exc.status_code == 405:  # Starlette names the first matching route's methods only
            headers = dict(headers or {}) | {"Allow": _allowed_methods(request)}
        return _error(exc.status_code, detail, headers)


def _allowed_methods(request: Request) -> str:
    """Every method some route serves at this path (GET and DELETE of one resource can sit
    in two routers: the read-only and the token-guarded one), asked of the routes themselves."""
    from starlette.routing import Match

    allowed = []
    for method in ("DELETE", "GET", "HEAD", "PATCH", "POST", "PUT"):
        scope = dict(request.scope) | {"method": method}
        if any(route.matches(scope)[0] == Match.FULL for route in request.app.router.routes):
            allowed.append(method)
    return ", ".join(allowed)


def _add_docs(app: FastAPI) -> None:
    """Swagger UI at /docs from the swagger-ui-bundle package's files (no network needed);
    without that package /docs says where the schema is instead of showing a blank page."""
    try:
        from swagger_ui_bundle import swagger_ui_path  # type: ignore[import-untyped]  # the package ships no types
    except ImportError:  # pragma: no cover - the package is a dependency
        swagger_ui_path = None

    if swagger_ui_path is not None:
        app.mount("/docs-assets", StaticFiles(directory=str(swagger_ui_path)), name="docs-assets")

    @app.get("/docs", include_in_schema=False)
    def docs() -> HTMLResponse:
        if swagger_ui_path is None:
            return HTMLResponse(
                "<p>Swagger UI is not installed (pip install swagger-ui-bundle-v2). "
                'The API schema is at <a href="/openapi.json">/openapi.json</a>.</p>'
            )
        return get_swagger_ui_html(
            openapi_url=app.openapi_url or "/openapi.json",
            title="crossmodal API",
            swagger_js_url="/docs-assets/swagger-ui-bundle.js",
            swagger_css_url="/docs-assets/swagger-ui.css",
            swagger_favicon_url="/docs-assets/favicon-32x32.png",
        )


def _add_page(app: FastAPI) -> None:
    app.mount("/static", StaticFiles(directory=str(STATIC_DIR)), name="static")
    security = {
        "Content-Security-Policy": PAGE_CSP,
        "X-Content-Type-Options": "nosniff",
        "Referrer-Policy": "no-referrer",
        "Cache-Control": "no-cache",
    }

    @app.get("/", include_in_schema=False)
    def page() -> FileResponse:
        return FileResponse(STATIC_DIR / "index.html", headers=security)

    @app.get("/favicon.ico", include_in_schema=False)
    def favicon() -> Any:
        return FileResponse(STATIC_DIR / "favicon.svg", media_type="image/svg+xml")
