"""Helpers of the sign-in tests: forms with their CSRF token, users, the log, table dumps."""

from __future__ import annotations

import email
import email.policy
import re
import time
from typing import Any

import pyotp
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select

from portal import db
from portal.mail import outbox_path
from portal.models import Base, Role, User
from portal.models.events import SecurityEvent
from portal.services import accounts

PASSWORD = "kopi-susu-tepi-kapuas"
NEW_PASSWORD = "tugu-khatulistiwa-2026"
CSRF = re.compile(r'name="csrf_token"[^>]*value="([^"]+)"')
RESET_LINK = re.compile(r"https?://[^/\s]+(/password/reset/[A-Za-z0-9_\-]+)")


def token_of(client: FlaskClient, page: str) -> str:
    response = client.get(page)
    found = CSRF.search(response.get_data(as_text=True))
    assert found, f"no CSRF token on {page} ({response.status_code})"
    return found.group(1)


def submit(client: FlaskClient, url: str, data: dict[str, str], page: str | None = None) -> Any:
    """POST a form the way a browser does: with the CSRF token of the page that shows it."""
    return client.post(url, data={**data, "csrf_token": token_of(client, page or url)})


def make_user(app: Flask, username: str, role: Role = Role.MEMBER, **extra: Any) -> int:
    with app.app_context(), db.transaction() as session:
        user = accounts.create_user(
            session, username=username, password=PASSWORD, role=role, **extra
        )
        return user.id


def get_user(app: Flask, username: str) -> User:
    with app.app_context(), db.transaction() as session:
        user = session.scalars(select(User).where(User.username == username)).one()
        session.expunge(user)
        return user


def login(client: FlaskClient, username: str, password: str = PASSWORD) -> Any:
    return submit(client, "/login", {"username": username, "password": password})


def events(app: Flask) -> list[SecurityEvent]:
    with app.app_context(), db.transaction() as session:
        found = list(session.scalars(select(SecurityEvent).order_by(SecurityEvent.seq)))
        session.expunge_all()
        return found


def tags(app: Flask) -> list[str]:
    return [e.tag for e in events(app)]


def dump(app: Flask, skip: frozenset[str] = frozenset()) -> str:
    """Every column of every table as text (``table.column=value`` lines), minus ``skip``."""
    lines = []
    with app.app_context(), db.get_engine().connect() as conn:
        for table in Base.metadata.sorted_tables:
            for row in conn.execute(select(table)).mappings():
                for column, value in row.items():
                    name = f"{table.name}.{column}"
                    if name not in skip:
                        lines.append(f"{name}={value}")
    return "\n".join(lines)


def assert_not_stored(app: Flask, *secrets: str) -> None:
    text = dump(app, frozenset({"user_account.totp_secret"}))
    for secret in secrets:
        assert secret and secret not in text, f"found in clear in the database: {secret[:6]}…"
        bare = secret.replace("-", "")
        assert bare not in text


def enrol(client: FlaskClient, app: Flask, username: str) -> tuple[str, list[str]]:
    """Sign in as a steward without TOTP, enrol, return the secret and the recovery codes."""
    response = login(client, username)
    assert response.status_code == 302 and response.location.endswith("/login/2fa/setup")
    page = client.get("/login/2fa/setup").get_data(as_text=True)
    assert "<svg" in page and "<script" not in page
    secret = get_user(app, username).totp_secret
    assert secret and secret in page  # the key for manual entry
    response = submit(client, "/login/2fa/setup", {"code": pyotp.TOTP(secret).now()})
    assert response.status_code == 200, response.get_data(as_text=True)
    codes = re.findall(
        r"<code>([a-z0-9]{4}-[a-z0-9]{4}-[a-z0-9]{4})</code>", response.get_data(as_text=True)
    )
    assert len(codes) == 10
    return secret, codes


def wrong_code(secret: str) -> str:
    valid = {pyotp.TOTP(secret).at(time.time() + 30 * k) for k in (-1, 0, 1, 2)}
    return next(c for c in ("000000", "111111", "222222", "333333") if c not in valid)


def later_code(secret: str, steps: int = 1) -> str:
    """A code still accepted (clock drift window) but not yet used."""
    return pyotp.TOTP(secret).at(time.time() + 30 * steps)


def logout(client: FlaskClient) -> Any:
    return submit(client, "/logout", {}, page="/")


def outbox(app: Flask) -> list[email.message.EmailMessage]:
    folder = outbox_path(app)
    messages = []
    for path in sorted(folder.glob("*.eml")) if folder.exists() else []:
        messages.append(email.message_from_bytes(path.read_bytes(), policy=email.policy.default))
    return messages


def reset_link(message: Any) -> str:
    found = RESET_LINK.search(message.get_content())
    assert found, message.get_content()
    return found.group(1)
