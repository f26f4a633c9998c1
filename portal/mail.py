"""Outgoing e-mail: SMTP when ``ONEDATA_SMTP_URL`` is set, otherwise ``.eml`` files in an outbox.

The outbox (``<instance>/outbox/``) lets the demo and the tests read what would have been sent,
password-reset links included, without any mail server. The SMTP URL carries a password: it is
never logged, and errors name only the host.
"""

from __future__ import annotations

import os
import smtplib
import ssl
import threading
import uuid
from datetime import UTC, datetime
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid
from pathlib import Path
from urllib.parse import unquote, urlsplit

from flask import Flask

__all__ = ["build_message", "outbox_path", "send_mail", "send_mail_later"]

TIMEOUT = 15


def outbox_path(app: Flask) -> Path:
    """The folder of written messages when no SMTP server is configured."""
    return Path(app.instance_path) / "outbox"


def build_message(app: Flask, to: str, subject: str, body: str) -> EmailMessage:
    """A plain-text message from ``ONEDATA_MAIL_FROM`` to ``to``.

    :raises ValueError: when a header would contain a line break (header injection).
    """
    msg = EmailMessage()
    sender = str(app.config.get("MAIL_FROM") or "Satu Data Kota Pontianak <noreply@localhost>")
    msg["From"] = sender
    msg["To"] = to
    msg["Subject"] = subject
    msg["Date"] = format_datetime(datetime.now(UTC))
    msg["Message-ID"] = make_msgid(domain=sender.rpartition("@")[2].strip("> ") or None)
    msg["Auto-Submitted"] = "auto-generated"
    msg.set_content(body)
    return msg


def send_mail(app: Flask, to: str, subject: str, body: str) -> Path | None:
    """Send one plain-text message now.

    :param app: the application (for its settings and instance folder).
    :param to: the recipient's address.
    :param subject: the subject line.
    :param body: the text.
    :returns: the ``.eml`` file written, or ``None`` when it went to the SMTP server.
    :raises ValueError: when ``ONEDATA_SMTP_URL`` is malformed or a header holds a line break.
    :raises OSError: when the SMTP server cannot be reached or refuses the message.
    """
    msg = build_message(app, to, subject, body)
    url = app.config.get("SMTP_URL")
    if url:
        _send_smtp(str(url), msg)
        return None
    return _write_outbox(outbox_path(app), msg)


def send_mail_later(app: Flask, to: str, subject: str, body: str) -> None:
    """Send without making the request wait for the SMTP server.

    The reply to "forgot password" must take as long whether or not the account exists; a
    server round trip only for real accounts would tell them apart. The outbox is written at
    once (it is fast, and the tests read it right after the request).
    """
    if not app.config.get("SMTP_URL"):
        send_mail(app, to, subject, body)
        return

    def deliver() -> None:
        try:
            send_mail(app, to, subject, body)
        except (OSError, ValueError, smtplib.SMTPException) as exc:
            app.logger.error("could not send mail: %s", type(exc).__name__)

    threading.Thread(target=deliver, name="onedata-mail", daemon=True).start()


def _send_smtp(url: str, msg: EmailMessage) -> None:
    parts = urlsplit(url)
    if parts.scheme not in ("smtp", "smtps") or not parts.hostname:
        raise ValueError("ONEDATA_SMTP_URL must look like smtp[s]://user:password@host:port")
    context = ssl.create_default_context()
    port = parts.port or (465 if parts.scheme == "smtps" else 587)
    client: smtplib.SMTP
    if parts.scheme == "smtps":
        client = smtplib.SMTP_SSL(parts.hostname, port, timeout=TIMEOUT, context=context)
    else:
        client = smtplib.SMTP(parts.hostname, port, timeout=TIMEOUT)
    with client:
        client.ehlo()
        encrypted = parts.scheme == "smtps"
        if not encrypted and client.has_extn("starttls"):
            client.starttls(context=context)
            client.ehlo()
            encrypted = True
        if parts.username:
            if not encrypted:
                raise ValueError("the SMTP server offers no STARTTLS: not sending the password")
            client.login(unquote(parts.username), unquote(parts.password or ""))
        client.send_message(msg)


def _write_outbox(folder: Path, msg: EmailMessage) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    name = f"{datetime.now(UTC):%Y%m%dT%H%M%S%f}-{uuid.uuid4().hex[:8]}.eml"
    path = folder / name
    # 0600: the messages hold reset links, readable by the operator only
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(msg.as_bytes())
    return path
