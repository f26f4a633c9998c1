"""``onedata security``: verify, checkpoint, export and archive the security event log."""

from __future__ import annotations

import gzip
import json
import os
import sys
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TextIO

import click
from flask import Flask
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from sqlalchemy import delete, func, select, text
from sqlalchemy.orm import Session

from portal import db
from portal.cli_common import console, operator_transaction, with_app
from portal.models.events import SecurityCheckpoint, SecurityEvent
from portal.services.access import OPERATOR
from portal.services.events import EventTag, record_event
from portal.services.events_export import export_jsonl, export_syslog, iter_records
from portal.services.events_verify import VerifyResult, sign, verify, write_checkpoint

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


@click.group(help="The security event log: verify, sign checkpoints, export, archive.")
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

    key = hmac_key(app, required=True)
    assert key is not None  # noqa: S101 - required=True raises instead
    if not no_verify:
        with db.transaction() as session:
            result = verify(session, key)
        if not result.ok:
            console.print(f"[bold red]{result}[/bold red]\nNot signing a broken chain.")
            sys.exit(1)
    with operator_transaction() as session:
        checkpoint = write_checkpoint(session, key)
        seq, digest = checkpoint.seq, checkpoint.hash
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


# --- retention --------------------------------------------------------------------------------

_JSONL = json.JSONEncoder(separators=(",", ":"), ensure_ascii=True)  # as `export --format jsonl`


@dataclass(frozen=True)
class Archived:
    """What :func:`archive_records` moved out of the database."""

    records: int
    first_seq: int = 0
    last_seq: int = 0
    checkpoint_written: bool = False


def archive_records(session: Session, *, before: datetime, output: Path, key: bytes) -> Archived:
    """Write the records older than ``before`` to ``output`` (gzip JSON Lines), then delete them.

    The records older than ``before`` are a prefix of the chain (``ts`` follows ``seq``). They
    are written and read back before anything is deleted; a signed checkpoint at the last one
    (unless one exists) lets :func:`~portal.services.events_verify.verify` anchor the rest of the
    chain; ``log:record:export`` records the archive. Checkpoint, event and deletion happen in
    the caller's transaction (PostgreSQL's trigger lets DELETE through only under
    ``SET LOCAL onedata.log_retention = 'on'``).

    :param session: the caller's session; commit it to make the removal happen.
    :param before: records strictly older than this (UTC) are archived.
    :param output: the archive file; must not exist.
    :param key: the checkpoint key.
    :raises click.ClickException: when the file exists or does not read back as written.
    """
    last = session.scalar(select(func.max(SecurityEvent.seq)).where(SecurityEvent.ts < before))
    if last is None:
        return Archived(0)
    first = int(session.scalar(select(func.min(SecurityEvent.seq))) or 1)
    last_hash = str(session.scalar(select(SecurityEvent.hash).where(SecurityEvent.seq == last)))
    count = _write_archive(session, output, first, int(last))
    if _read_back(output) != (count, last_hash):
        raise click.ClickException(f"{output} does not hold what was written: nothing deleted")
    existing = session.scalars(
        select(SecurityCheckpoint.hash).where(SecurityCheckpoint.seq == last)
    ).all()
    write_cp = last_hash not in existing
    if write_cp:
        session.add(SecurityCheckpoint(seq=last, hash=last_hash, hmac=sign(key, last, last_hash)))
        session.flush()
    record_event(
        session,
        EventTag.LOG_RECORD_EXPORT,
        actor=OPERATOR,
        details={
            "format": "jsonl.gz",
            "purpose": "archive",
            "records": count,
            "first_seq": first,
            "last_seq": last,
            "before": before.isoformat(),
            "file": output.name,
        },
    )
    if session.get_bind().dialect.name == "postgresql":
        session.execute(text("SET LOCAL onedata.log_retention = 'on'"))
    session.execute(
        delete(SecurityEvent)
        .where(SecurityEvent.seq <= last)
        .execution_options(synchronize_session=False)
    )
    return Archived(count, first, int(last), write_cp)


def _write_archive(session: Session, output: Path, first: int, last: int) -> int:
    part = output.with_name(output.name + ".part")
    count = 0
    fd = os.open(part, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)  # records hold IP addresses
    try:
        with os.fdopen(fd, "wb") as raw:
            with gzip.open(raw, "wt", encoding="ascii", newline="\n") as fh:
                for record in iter_records(session, after_seq=first - 1):
                    if record["seq"] > last:
                        break
                    fh.write(_JSONL.encode(record))
                    fh.write("\n")
                    count += 1
            raw.flush()
            os.fsync(raw.fileno())  # on disk before the records leave the database
        if output.exists():
            raise click.ClickException(f"{output} exists: not overwriting an archive")
        part.rename(output)
    finally:
        part.unlink(missing_ok=True)
    return count


def _read_back(path: Path) -> tuple[int, str | None]:
    count, last_hash = 0, None
    with gzip.open(path, "rt", encoding="ascii") as fh:
        for line in fh:
            count += 1
            last_hash = json.loads(line)["hash"]
    return count, last_hash


@security.command(
    "archive", help="Move records older than --before to a gzip JSON Lines file, then delete them."
)
@click.option(
    "--before",
    type=click.DateTime(formats=["%Y-%m-%d", "%Y-%m-%dT%H:%M:%S", "%Y-%m-%dT%H:%M:%S.%f"]),
    help="UTC time (default: ONEDATA_LOG_RETENTION_DAYS days ago).",
)
@click.option(
    "--output", "-o", required=True, type=click.Path(dir_okay=False), help="The .jsonl.gz file."
)
@with_app
def archive_command(app: Flask, before: datetime | None, output: str) -> None:
    key = hmac_key(app, required=True)
    assert key is not None  # noqa: S101 - required=True raises instead
    now = datetime.now(UTC)
    if before is None:
        days = app.config.get("LOG_RETENTION_DAYS")
        before = now - timedelta(days=365 if days is None else int(days))
    before = before.replace(tzinfo=UTC) if before.tzinfo is None else before.astimezone(UTC)
    if before > now:
        raise click.ClickException("--before is in the future: that would archive the whole log")
    path = Path(output)
    if path.exists():
        raise click.ClickException(f"{path} exists: not overwriting an archive")
    with db.transaction() as session:
        result = verify(session, key)
    if not result.ok:
        console.print(f"[bold red]{result}[/bold red]\nNot archiving a broken chain.")
        sys.exit(1)
    with db.transaction() as session:
        archived = archive_records(session, before=before, output=path, key=key)
    if not archived.records:
        console.print(f"no record is older than {before:%Y-%m-%d %H:%M:%S} UTC")
        return
    console.print(
        f"archived {archived.records} records (seq {archived.first_seq}–{archived.last_seq})"
        f" to {path} and removed them from the database"
        + (f"; checkpoint at seq {archived.last_seq}" if archived.checkpoint_written else "")
    )


# --- key rotation ----------------------------------------------------------------------------


def resign_checkpoints(session: Session, key: bytes) -> int:
    """Replace every checkpoint by one signed with ``key``; return how many (flushes only).

    Call it after the checkpoints verified under the old key: the new signatures vouch for what
    was checked. Holds the writers' lock first, so no checkpoint is written meanwhile.

    :param session: the caller's session; commit it to make the change.
    :param key: the new checkpoint key.
    """
    record_event(  # first: takes the lock that write_checkpoint also needs
        session,
        EventTag.SYSTEM_CONFIG_CHANGE,
        actor=OPERATOR,
        details={"setting": "LOG_HMAC_KEY", "action": "rotate"},
    )
    rows = session.execute(
        select(
            SecurityCheckpoint.id,
            SecurityCheckpoint.seq,
            SecurityCheckpoint.hash,
            SecurityCheckpoint.created_at,
        ).order_by(SecurityCheckpoint.id)
    ).all()
    if not rows:
        return 0
    for _id, seq, digest, created in rows:
        session.add(
            SecurityCheckpoint(
                seq=seq, hash=digest, hmac=sign(key, seq, digest), created_at=created
            )
        )
    session.flush()
    if session.get_bind().dialect.name == "postgresql":
        session.execute(text("SET LOCAL onedata.log_retention = 'on'"))
    session.execute(
        delete(SecurityCheckpoint)
        .where(SecurityCheckpoint.id <= rows[-1][0])
        .execution_options(synchronize_session=False)
    )
    return len(rows)


@security.command(
    "rotate-key",
    help="Check the checkpoints with the old key, then re-sign them with ONEDATA_LOG_HMAC_KEY.",
)
@click.option(
    "--old-key-file",
    required=True,
    type=click.Path(exists=True, dir_okay=False),
    help="File holding the key being replaced (not on the command line: it would be logged).",
)
@with_app
def rotate_key_command(app: Flask, old_key_file: str) -> None:
    new = hmac_key(app, required=True)
    assert new is not None  # noqa: S101 - required=True raises instead
    old = Path(old_key_file).read_text(encoding="utf-8").strip().encode("utf-8")
    if len(old) < MIN_KEY_LENGTH or old == new:
        raise click.ClickException("the old key is too short or equal to the new one")
    with db.transaction() as session:
        result = verify(session, old)
    if not result.ok:
        console.print(f"[bold red]{result}[/bold red]\nNot re-signing: fix or explain this first.")
        sys.exit(1)
    with db.transaction() as session:
        count = resign_checkpoints(session, new)
    console.print(f"{count} checkpoints re-signed with the new key; destroy the old key file now.")
