"""The ASGI application: routes, the bearer token, and errors in OpenAI's shape.

Every error answers ``{"error": {"message", "type", "param", "code"}}`` as
OpenAI's API does, so its clients raise their usual exceptions: a body that
breaks a rule is a 400 naming the field and the rule, an unknown family or
version a 404, a missing or wrong token a 401, a write to a read-only service
a 403, an unreachable store a 503. Nothing secret is ever in an answer: configs
hold no keys, and messages go through :func:`reembed.redact.redact`.
"""

from __future__ import annotations

import hmac
import logging
import os
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from fastapi import Depends, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, ConfigDict

from ...errors import ConfigError, NotFoundError, ReembedError, TransientError, classify
from ...redact import redact
from . import embeddings, families
from .metrics import CONTENT_TYPE, Metrics
from .readers import Readers

log = logging.getLogger(__name__)
TOKEN_ENV = "REEMBED_SERVE_TOKEN"
CORS_ENV = "REEMBED_SERVE_CORS_ORIGINS"


@dataclass(frozen=True)
class ServeOptions:
    """How the service runs: its token, whether it may flip, which origins may call it."""

    token: str
    allow_writes: bool = False
    cors_origins: tuple[str, ...] = ()

    @classmethod
    def from_env(cls, allow_writes: bool = False) -> ServeOptions:
        token = os.environ.get(TOKEN_ENV, "")
        if not token.strip():
            raise ConfigError(f"{TOKEN_ENV} is not set: reembed serve answers only requests "
                              f"that carry it (Authorization: Bearer <{TOKEN_ENV}>)")
        origins = tuple(o.strip() for o in os.environ.get(CORS_ENV, "").split(",") if o.strip())
        return cls(token, allow_writes, origins)


class FlipRequest(BaseModel):
    """``{version, force?, catch_up?}`` (``version`` is ignored by a rollback)."""

    model_config = ConfigDict(extra="forbid")

    version: str | None = None
    force: bool = False
    catch_up: bool = True


class ApiError(Exception):
    """An answer other than 200, in OpenAI's error shape."""

    def __init__(self, status: int, message: str, kind: str, param: str | None = None,
                 code: str | None = None) -> None:
        super().__init__(message)
        self.status, self.message, self.kind, self.param, self.code = \
            status, message, kind, param, code

    def response(self) -> JSONResponse:
        body = {"error": {"message": redact(self.message), "type": self.kind,
                          "param": self.param, "code": self.code}}
        headers = {"WWW-Authenticate": "Bearer"} if self.status == 401 else None
        return JSONResponse(body, status_code=self.status, headers=headers)


def create_app(options: ServeOptions, readers: Readers | None = None) -> FastAPI:
    """The service: the routes of :mod:`reembed.ops.serve` behind ``options.token``."""
    app = FastAPI(title="reembed", docs_url=None, redoc_url=None, openapi_url=None)
    readers = readers or Readers()
    metrics = Metrics()
    _errors(app)
    _timing(app, metrics)
    if options.cors_origins:
        from fastapi.middleware.cors import CORSMiddleware

        app.add_middleware(CORSMiddleware, allow_origins=list(options.cors_origins),
                           allow_methods=["GET", "POST"], allow_headers=["Authorization",
                                                                          "Content-Type"])
    auth = Depends(_bearer(options.token))
    _dashboard(app, options, readers)

    @app.get("/healthz")
    def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/metrics", dependencies=[auth])
    def metrics_text() -> Response:
        return Response(metrics.text(), media_type=CONTENT_TYPE)

    @app.post("/v1/embeddings", dependencies=[auth])
    def embed(body: embeddings.EmbeddingsRequest) -> dict[str, Any]:
        return embeddings.embeddings(readers, body)

    @app.get("/v1/families", dependencies=[auth])
    def family_list() -> dict[str, Any]:
        return {"object": "list", "data": families.listing()}

    @app.get("/v1/families/{family}", dependencies=[auth])
    def family_detail(family: str) -> dict[str, Any]:
        return families.detail(family)

    @app.post("/v1/families/{family}/query", dependencies=[auth])
    def family_query(family: str, body: families.QueryRequest) -> dict[str, Any]:
        return families.query(readers, family, body)

    @app.post("/v1/families/{family}/flip", dependencies=[auth])
    def family_flip(request: Request, family: str, body: FlipRequest) -> dict[str, Any]:
        return _move(options, readers, family, body, rollback=False, by=_client(request))

    @app.post("/v1/families/{family}/rollback", dependencies=[auth])
    def family_rollback(request: Request, family: str, body: FlipRequest) -> dict[str, Any]:
        return _move(options, readers, family, body, rollback=True, by=_client(request))

    return app


def _dashboard(app: FastAPI, options: ServeOptions, readers: Readers) -> None:
    """The pages under ``/ui``, their script, and ``/`` leading to them."""
    from fastapi.responses import RedirectResponse
    from fastapi.staticfiles import StaticFiles

    from . import dashboard

    dashboard.mount(app, options.token, readers)
    app.mount("/ui/static", StaticFiles(directory=dashboard.HERE / "static"), name="static")

    @app.get("/", include_in_schema=False)
    def home() -> Response:
        return RedirectResponse("/ui", 307)


def from_env() -> FastAPI:
    """The app as ``reembed serve`` runs it (uvicorn's factory, once per worker process)."""
    return create_app(ServeOptions.from_env(os.environ.get("REEMBED_SERVE_ALLOW_WRITES") == "1"))


def _client(request: Request) -> str:
    """Who asked, for the alias history: the service, and the client's address."""
    from ...store.aliases import actor

    peer = request.client.host if request.client else "unknown"
    return f"reembed serve ({actor()}) for {peer}"


def _move(options: ServeOptions, readers: Readers, family: str, body: FlipRequest,
          rollback: bool, by: str) -> dict[str, Any]:
    """A flip or rollback through the same checks and catch-up as the command line."""
    from .. import flips

    if not options.allow_writes:
        raise ApiError(403, "this service is read-only: start it with `reembed serve "
                       "--allow-writes` to flip and roll back through it", "permission_error")
    if rollback:
        report = flips.rollback(family, force=body.force, catch_up=body.catch_up, by=by)
    elif not body.version:
        raise ApiError(400, "version is required: the version label to flip to",
                       "invalid_request_error", "version")
    else:
        report = flips.flip(family, body.version, force=body.force, catch_up=body.catch_up,
                            by=by)
    readers.refresh(family)
    return families.plain({"family": family, "result": vars(report.result),
                           "caught_up": report.caught_up, "note": report.note})


def _bearer(token: str) -> Callable[[Request], None]:
    expected = token.encode()

    def check(request: Request) -> None:
        scheme, _, given = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not hmac.compare_digest(given.strip().encode(),
                                                                 expected):
            raise ApiError(401, "missing or wrong bearer token (Authorization: Bearer "
                           f"<{TOKEN_ENV}>)", "authentication_error",
                           code="invalid_api_key")
    return check


def _errors(app: FastAPI) -> None:
    @app.exception_handler(ApiError)
    async def api_error(_: Request, exc: ApiError) -> JSONResponse:
        return exc.response()

    @app.exception_handler(RequestValidationError)
    async def invalid(_: Request, exc: RequestValidationError) -> JSONResponse:
        return _invalid(exc).response()

    @app.exception_handler(embeddings.BadRequest)
    async def bad(_: Request, exc: embeddings.BadRequest) -> JSONResponse:
        return ApiError(400, str(exc), "invalid_request_error", exc.param).response()

    @app.exception_handler(ReembedError)
    async def refused(_: Request, exc: ReembedError) -> JSONResponse:
        return _classified(exc).response()  # expected: answered, not logged as a crash

    @app.exception_handler(Exception)
    async def other(_: Request, exc: Exception) -> JSONResponse:
        return _classified(exc).response()  # a raw driver error: classified, and logged


def _invalid(exc: RequestValidationError) -> ApiError:
    """The first broken rule of a body, naming its field (``input``, ``k``, ``text``)."""
    err = exc.errors()[0]
    where = [str(p) for p in err.get("loc", ()) if p != "body"]
    field = ".".join(where) or "body"
    got = f" (got {err['input']!r})" if "input" in err and err["type"] != "missing" else ""
    return ApiError(400, f"{field}: {err.get('msg', 'invalid')}{got}"[:500],
                    "invalid_request_error", field)


def _classified(exc: Exception) -> ApiError:
    err = classify(exc)
    if isinstance(err, NotFoundError):
        return ApiError(404, str(err), "invalid_request_error", code="not_found")
    if isinstance(err, TransientError):
        return ApiError(503, f"a store is unreachable: {err}", "service_unavailable")
    if isinstance(err, ReembedError):
        return ApiError(400, str(err), "invalid_request_error")
    log.exception("unexpected error answering a request")
    return ApiError(500, f"internal error ({type(exc).__name__}); see the service's log",
                    "server_error")


def _timing(app: FastAPI, metrics: Metrics) -> None:
    @app.middleware("http")
    async def timed(request: Request, call_next: Callable[[Request], Awaitable[Response]]
                    ) -> Response:
        started = time.perf_counter()
        response = await call_next(request)
        route = request.scope.get("route")
        path = getattr(route, "path", "unmatched")
        metrics.latency.labels(path).observe(time.perf_counter() - started)
        return response
