"""``onedata security``: verify, checkpoint and export the security event log."""

from __future__ import annotations

import os
import sys
from datetime import datetime
from typing import TextIO

import click
from flask import Flask
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from sqlalchemy import func, select

from portal import db
from portal.cli_common import console, with_app
from portal.models.events import SecurityEvent
from portal.services.access import OPERATOR
from portal.services.events import EventTag, record_event
from portal.services.events_export import export_jsonl, export_syslog
from portal.services.events_verify import VerifyResult, verify, write_checkpoint

#: Below this many records verification is quick enough to need no progress bar.
PROGRESS_FROM = 50_000
MIN_KEY_LENGTH = 32
err_console = Console(stderr=True, highlight=False)


def hmac_key(app: Flask, *, required: bool) -> bytes | None:
    """The checkpoint key from ``ONEDATA_LOG_HMAC_KEY``; not the app's secret key."""
    raw = app.config.get("LOG_HMAC_KEY") or os.environ.get("ONEDATA_LOG_HMAC_KEY")
    if not raw:
        if required:
            raise click.ClickException(
                "ONEDATA_LOG_HMAC_KEY is not set. Generate one with `openssl rand -hex 32`,"
                " keep it out of the web server's environment, and set it for this command."
            )
        return None
    if len(raw) < MIN_KEY_LENGTH:
        raise click.ClickException(
            f"ONEDATA_LOG_HMAC_KEY is too short (at least {MIN_KEY_LENGTH} characters)."
        )
    if raw == app.config.get("SECRET_KEY"):
        raise click.ClickException("ONEDATA_LOG_HMAC_KEY must differ from ONEDATA_SECRET_KEY.")
    return str(raw).encode("utf-8")


@click.group(help="The security event log: verify its chain, sign checkpoints, export it.")
def security() -> None:
    pass


@security.command("verify", help="Walk the hash chain and the checkpoints; exit 1 if broken.")
@click.option(
    "--record/--no-record",
    default=True,
    show_default=True,
    help="Record the result in the log (log:integrity:ok or log:integrity:failure).",
)
@with_app
def verify_command(app: Flask, record: bool) -> None:
    key = hmac_key(app, required=False)
    if key is None:
        console.print(
            "[yellow]ONEDATA_LOG_HMAC_KEY is not set: checkpoint signatures are not checked.[/]"
        )
    with db.transaction() as session:
        total = session.scalar(select(func.count()).select_from(SecurityEvent)) or 0
        if total >= PROGRESS_FROM:
            with Progress(
                TextColumn("verifying"),
                BarColumn(),
                MofNCompleteColumn(),
                TimeRemainingColumn(),
                console=console,
                transient=True,
            ) as bar:
                task = bar.add_task("verify", total=total)
                result = verify(
                    session, key, progress=lambda done, _total: bar.update(task, completed=done)
                )
        else:
            result = verify(session, key)
    if record:
        _record_result(result)
    if result.ok:
        console.print(f"[green]{result}[/green]")
        return
    console.print(f"[bold red]{result}[/bold red]")
    sys.exit(1)


def _record_result(result: VerifyResult) -> None:
    details: dict[str, object] = {
        "records": result.records,
        "checkpoints": result.checkpoints,
        "signatures_checked": result.signatures_checked,
    }
    if not result.ok:
        details.update(
            first_bad_seq=result.first_bad_seq,
            problem=str(result.problem),
            message=result.message,
        )
    tag = EventTag.LOG_INTEGRITY_OK if result.ok else EventTag.LOG_INTEGRITY_FAILURE
    with db.transaction() as session:
        record_event(session, tag, actor=OPERATOR, details=details)


@security.command("checkpoint", help="Sign the current end of the chain (needs the HMAC key).")
@click.option("--no-verify", is_flag=True, help="Sign without verifying the chain first.")
@with_app
def checkpoint_command(app: Flask, no_verify: bool) -> None:
    from portal.errors import PortalError

    key = hmac_key(app, required=True)
    assert key is not None  # noqa: S101 - required=True raises instead
    if not no_verify:
        with db.transaction() as session:
            result = verify(session, key)
        if not result.ok:
            console.print(f"[bold red]{result}[/bold red]\nNot signing a broken chain.")
            sys.exit(1)
    try:
        with db.transaction() as session:
            checkpoint = write_checkpoint(session, key)
            seq, digest = checkpoint.seq, checkpoint.hash
    except PortalError as exc:
        raise click.ClickException(exc.message) from exc
    console.print(f"checkpoint at seq {seq}: {digest}")


@security.command("export", help="Write the log as JSON Lines or RFC 5424 syslog lines.")
@click.option(
    "--format", "fmt", type=click.Choice(["jsonl", "syslog"]), default="jsonl", show_default=True
)
@click.option(
    "--output", "-o", type=click.Path(dir_okay=False, writable=True), help="File (default: stdout)."
)
@click.option(
    "--since",
    type=click.DateTime(formats=["%Y-%m-%d", "%Y-%m-%dT%H:%M:%S"]),
    help="Only records from this UTC time.",
)
@with_app
def export_command(app: Flask, fmt: str, output: str | None, since: datetime | None) -> None:
    if output:
        with open(output, "w", encoding="utf-8", newline="\n") as fh:
            count = _export(fh, fmt, since)
    else:
        count = _export(sys.stdout, fmt, since)
    with db.transaction() as session:
        record_event(
            session,
            EventTag.LOG_RECORD_EXPORT,
            actor=OPERATOR,
            details={
                "format": fmt,
                "records": count,
                "since": since.isoformat() if since else None,
            },
        )
    err_console.print(f"exported {count} records ({fmt})")


def _export(out: TextIO, fmt: str, since: datetime | None) -> int:
    with db.transaction() as session:
        if fmt == "syslog":
            return export_syslog(session, out, since)
        return export_jsonl(session, out, since)
