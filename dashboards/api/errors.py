"""JSON errors that name the field: every 4xx says what was wrong and where, a 500 never shows a traceback.

Body shape: ``{"error": {"status": 422, "field": "limit", "message": "..."}}``; a validation error
with several problems lists them all under ``"problems"``.

Example:
    >>> ApiError(404, "fingerprint", "no alert with fingerprint 'ab'").body()
    {'error': {'status': 404, 'field': 'fingerprint', 'message': "no alert with fingerprint 'ab'"}}
"""
from __future__ import annotations

import logging

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

log = logging.getLogger("citybrain.api")


class ApiError(Exception):
    """A request the caller can fix (or may not make): HTTP status, the offending field, a readable message."""

    def __init__(self, status: int, field: str, message: str):
        super().__init__(message)
        self.status = status
        self.field = field
        self.message = message

    def body(self) -> dict:
        return {"error": {"status": self.status, "field": self.field, "message": self.message}}


def _field(loc) -> str:
    # FastAPI locations look like ("query", "limit") or ("body", "matchers", 0): drop the source part
    parts = [str(p) for p in loc if p not in ("query", "path", "body", "header")]
    return ".".join(parts) or "body"


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(ApiError)
    async def _api_error(_request: Request, exc: ApiError):
        headers = {"WWW-Authenticate": "Bearer"} if exc.status == 401 else None
        return JSONResponse(exc.body(), status_code=exc.status, headers=headers)

    @app.exception_handler(RequestValidationError)
    async def _validation(_request: Request, exc: RequestValidationError):
        problems = [{"field": _field(e.get("loc", ())), "message": e.get("msg", "invalid")} for e in exc.errors()]
        first = problems[0] if problems else {"field": "body", "message": "invalid request"}
        return JSONResponse({"error": {"status": 422, "field": first["field"], "message": first["message"],
                                       "problems": problems}}, status_code=422)

    @app.exception_handler(StarletteHTTPException)
    async def _http(_request: Request, exc: StarletteHTTPException):
        return JSONResponse({"error": {"status": exc.status_code, "field": "path", "message": str(exc.detail)}},
                            status_code=exc.status_code)

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception):
        # logged with the traceback for the operator; the caller gets no internals
        log.exception("unhandled error", extra={"fields": {"path": request.url.path}})
        return JSONResponse({"error": {"status": 500, "field": "", "message": f"internal error ({type(exc).__name__})"}},
                            status_code=500)
