"""Shared checks of the account, access-request and admin views: who is signed in, may they.

Anonymous visitors of a page are sent to ``/login?next=…``; anonymous API callers get 401 in
the one error shape. Signed-in users without the permission get 403 (and a security event).
The decision itself is always :func:`portal.services.access.can`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, NoReturn
from urllib.parse import urlencode

from flask import abort, redirect, request, url_for
from werkzeug.routing import BuildError

from portal.db import get_session
from portal.errors import Forbidden, Invalid, PortalError
from portal.identity import current_actor, current_user, request_info
from portal.models import User
from portal.services.access import Actor, Permission, can
from portal.services.events import EventTag, record_event

if TYPE_CHECKING:

    class FlaskForm:
        """A typed stand-in: flask_wtf ships no type information, and mypy refuses ``Any`` bases."""

        errors: dict[str, Any]

        def __init__(self, *args: Any, **kwargs: Any) -> None: ...
        def is_submitted(self) -> bool: ...
        def validate_on_submit(self) -> bool: ...
        def __getattr__(self, name: str) -> Any: ...

else:
    from flask_wtf import FlaskForm

__all__ = [
    "FlaskForm",
    "SignInRequired",
    "login_url",
    "require",
    "sign_in",
    "signed_in",
    "submitted",
]


class SignInRequired(PortalError):
    status = 401
    code = "unauthenticated"


def _here() -> str:
    query = request.query_string.decode("latin-1")
    return request.path + (f"?{query}" if query else "")


def login_url(next_url: str | None = None) -> str:
    """The sign-in page, coming back to ``next_url`` (this page by default)."""
    target = next_url or _here()
    try:
        return url_for("auth.login", next=target)
    except BuildError:  # the sign-in blueprint is not registered (tests of this module)
        return "/login?" + urlencode({"next": target})


def sign_in() -> NoReturn:
    """Stop here: send a page visitor to the sign-in page, refuse an API caller with 401."""
    if request.path.startswith("/api/"):
        raise SignInRequired("sign in or present an API token")
    abort(redirect(login_url()))


def signed_in() -> tuple[Actor, User]:
    """The actor and user of a request made by a signed-in user (session or personal token)."""
    actor = current_actor()
    user = current_user()
    if user is None:
        if actor.is_authenticated:  # an OAuth client acting for someone: not for these pages
            raise Forbidden("this needs a browser session or a personal API token")
        sign_in()
    return actor, user


def require(*permissions: Permission) -> Actor:
    """The actor, when they hold one of ``permissions``; sign-in or 403 otherwise."""
    actor = current_actor()
    if not actor.is_authenticated:
        sign_in()
    if not any(can(actor, p) for p in permissions):
        record_event(
            get_session(),
            EventTag.AUTHZ_ACCESS_DENY,
            actor=actor,
            target=("endpoint", request.endpoint),
            details={"permission": [p.value for p in permissions]},
            request=request_info(403),
        )
        raise Forbidden("you do not have permission to see this page")
    return actor


def submitted(form: FlaskForm) -> bool:
    """Whether ``form`` was posted and is valid; a post without a valid CSRF token is refused.

    :raises Invalid: (400) when the CSRF token is missing or wrong, whatever else was posted.
    """
    valid = form.validate_on_submit()
    if request.method == "POST" and "csrf_token" in form.errors:
        raise Invalid("the form has expired or did not come from this site: reload and retry")
    return bool(valid)
