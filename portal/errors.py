"""Domain errors and the one place that turns them (and HTTP errors) into responses.

API paths get the one JSON error shape::

    {"ok": false, "status": 404, "error": "...", "errors": [{"field"?, "code", "message"}]}

HTML pages get a generic error page that leaks nothing.
"""

from __future__ import annotations

from typing import Any

from flask import Flask, Response, g, jsonify, render_template, request
from flask_babel import gettext as _
from werkzeug.exceptions import HTTPException


class PortalError(Exception):
    status = 400
    code = "invalid"

    def __init__(self, message: str, errors: list[dict[str, Any]] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.errors = errors or [{"code": self.code, "message": message}]


class Invalid(PortalError):
    status = 400
    code = "invalid"


class Forbidden(PortalError):
    status = 403
    code = "forbidden"


class NotFound(PortalError):
    status = 404
    code = "not_found"


class Conflict(PortalError):
    status = 409
    code = "conflict"


def error_body(
    status: int, message: str, errors: list[dict[str, Any]] | None = None
) -> dict[str, Any]:
    return {
        "ok": False,
        "status": status,
        "error": message,
        "errors": errors if errors is not None else [{"code": str(status), "message": message}],
    }


def _wants_json() -> bool:
    return request.path.startswith("/api/")


def _respond(status: int, message: str, errors: list[dict[str, Any]] | None = None) -> Response:
    if _wants_json():
        response = jsonify(error_body(status, message, errors))
    else:
        response = Response(
            render_template("error.html", status=status, message=message), mimetype="text/html"
        )
    response.status_code = status
    return response


def register(app: Flask) -> None:
    @app.errorhandler(PortalError)
    def portal_error(exc: PortalError) -> Response:
        return _respond(exc.status, exc.message, exc.errors)

    @app.errorhandler(HTTPException)
    def http_error(exc: HTTPException) -> Response:
        status = exc.code or 500
        messages = {
            404: _("Page not found."),
            405: _("Method not allowed."),
            413: _("The request is too large."),
        }
        message = messages.get(status) or (exc.description or exc.name)
        return _respond(
            status, message, [{"code": exc.name.lower().replace(" ", "_"), "message": message}]
        )

    @app.errorhandler(Exception)
    def unexpected(exc: Exception) -> Response:
        app.logger.exception("unexpected error on %s %s", request.method, request.path)
        _record_unexpected(app, exc)
        message = _("Something went wrong on our side. Please try again later.")
        return _respond(500, message, [{"code": "internal_error", "message": message}])


def _record_unexpected(app: Flask, exc: Exception) -> None:
    """Log ``system:error:unexpected`` (exception type and request id, never the message).

    The request's own work is rolled back first: it failed half-way, and its transaction may
    hold the log's head lock. The event is written in a transaction of its own, and nothing
    here may raise: a broken database must still answer with the generic page.
    """
    from portal.identity import request_info
    from portal.services.events import EventTag, record_failure_event

    try:
        failed = g.pop("db_session", None)
        if failed is not None:
            failed.expunge_all()  # the page may still show the signed-in user: keep it loaded
            failed.close()  # rolls the work back and frees the connection
        record_failure_event(
            app.extensions["onedata.engine"],
            EventTag.SYSTEM_ERROR_UNEXPECTED,
            actor=g.get("actor"),  # only when already known: resolving it may need the database
            target=("endpoint", request.endpoint),
            details={"exception": type(exc).__name__},
            request=request_info(500),
        )
    except Exception:  # the page must still be served; the application log keeps the trace
        app.logger.exception("could not record the unexpected error in the security log")
