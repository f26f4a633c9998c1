"""``onedata harvest …`` and ``onedata worker``: sources, runs, progress and summaries."""

from __future__ import annotations

import sys
import threading
from pathlib import Path
from typing import Any

import click
from flask import Flask
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from portal import db
from portal.cli_common import console, operator_transaction, with_app
from portal.harvesting import JobSummary, enqueue, reap, run_many
from portal.models import Frequency


@click.group(help="Harvest sources and runs.")
def harvest() -> None:
    pass


@harvest.command("list", help="List harvest sources with their health.")
@with_app
def harvest_list(app: Flask) -> None:
    from portal.services.health import source_health

    reap(app)
    with db.transaction() as session:
        table = Table(
            "source",
            "kind",
            "OPD",
            "trusted",
            "last run",
            "last success",
            "fails",
            "failed items",
            "stale",
            "last error",
        )
        for h in source_health(session):
            table.add_row(
                h.name,
                h.kind,
                h.organization,
                "yes" if h.trusted else "no",
                _when(h.last_run_at),
                _when(h.last_success_at),
                str(h.consecutive_failures),
                "—" if h.failed_items is None else str(h.failed_items),
                "[red]yes[/red]" if h.stale else "no",
                (h.last_error or "")[:80],
                style=None if h.active else "dim",
            )
        console.print(table)


@harvest.command("add", help="Register a harvest source for an OPD.")
@click.option("--kind", required=True, help="Source kind: folder, url, ckan, jsonapi, sql, dcat …")
@click.option("--url", required=True, help="URL (or folder path) of the source.")
@click.option("--org", "org_name", required=True, help="Name of the OPD that owns the source.")
@click.option("--name", default=None, help="Unique source name (default: <org>-<kind>).")
@click.option("--title", default=None, help="Title shown on the health page (default: the name).")
@click.option("--frequency", type=click.Choice([f.value for f in Frequency]), default="harian")
@click.option("--trusted", is_flag=True, help="Publish clean versions without review.")
@click.option(
    "--config",
    "config_text",
    default=None,
    metavar="JSON",
    help="The harvester's options: a JSON object, or @path/to/file.json.",
)
@with_app
def harvest_add(
    app: Flask,
    kind: str,
    url: str,
    org_name: str,
    name: str | None,
    title: str | None,
    frequency: str,
    trusted: bool,
    config_text: str | None,
) -> None:
    from portal.services.access import OPERATOR
    from portal.services.catalog import get_organization
    from portal.services.harvest_sources import add_source

    config = _config_option(config_text)
    with operator_transaction() as session:
        source = add_source(
            session,
            OPERATOR,
            kind=kind,
            url=url,
            organization=get_organization(session, org_name),
            name=name,
            title=title,
            trusted=trusted,
            frequency=Frequency(frequency),
            config=config,
        )
        console.print(f"Added source [bold]{source.name}[/bold].")


@harvest.command("pause", help="Stop harvesting a source on schedule (--due and --all skip it).")
@click.argument("name")
@with_app
def harvest_pause(app: Flask, name: str) -> None:
    _set_active(name, False)


@harvest.command("resume", help="Harvest a paused source on schedule again.")
@click.argument("name")
@with_app
def harvest_resume(app: Flask, name: str) -> None:
    _set_active(name, True)


def _set_active(name: str, active: bool) -> None:
    from portal.services.access import OPERATOR
    from portal.services.harvest_sources import get_managed_source, set_active

    with operator_transaction() as session:
        source = get_managed_source(session, OPERATOR, name)
        changed = set_active(session, OPERATOR, source, active)
    state = "resumed" if active else "paused"
    console.print(
        f"Source [bold]{name}[/bold] {state}." if changed else f"{name} is already {state}."
    )


def _config_option(text: str | None) -> dict[str, Any] | None:
    """``--config``: a JSON object, or ``@file`` holding one."""
    from portal.errors import Invalid
    from portal.services.harvest_sources import parse_config

    if text is None:
        return None
    if text.startswith("@"):
        try:
            text = Path(text[1:]).expanduser().read_text(encoding="utf-8")
        except OSError as exc:
            raise click.BadParameter(
                f"cannot read {text[1:]}: {exc.strerror or exc}", param_hint="--config"
            ) from exc
    try:
        return parse_config(text)
    except Invalid as exc:
        raise click.BadParameter(exc.message, param_hint="--config") from exc


@harvest.command("run", help="Harvest the named sources, all of them (--all) or those due (--due).")
@click.argument("sources", nargs=-1)
@click.option("--all", "run_all", is_flag=True, help="Run every active source.")
@click.option("--due", is_flag=True, help="Run the sources whose frequency says they are due.")
@click.option("--dry-run", is_flag=True, help="Show what would change; store nothing.")
@click.option(
    "--now",
    "in_process",
    is_flag=True,
    help="Run here even when ONEDATA_REDIS_URL is set (default: queue to workers).",
)
@with_app
def harvest_run(
    app: Flask, sources: tuple[str, ...], run_all: bool, due: bool, dry_run: bool, in_process: bool
) -> None:
    from portal.services.harvest import list_sources
    from portal.services.harvest_schedule import due_sources

    if bool(sources) + run_all + due != 1:
        raise click.UsageError("name one or more sources, or pass --all, or pass --due")
    reap(app)
    with db.transaction() as session:
        known = {s.name: s.active for s in list_sources(session)}
        if run_all:
            sources = tuple(name for name, active in known.items() if active)
        elif due:
            sources = tuple(s.name for s in due_sources(session))
    unknown = [name for name in sources if name not in known]
    if unknown:
        raise click.ClickException(
            f"no harvest source named {', '.join(unknown)}; see `onedata harvest list`"
        )
    if not sources:
        console.print("Nothing to harvest." + (" No source is due." if due else ""))
        return
    if app.config.get("REDIS_URL") and not in_process:
        ids = enqueue(app, list(sources), dry_run=dry_run)
        console.print(
            f"Queued {len(sources)} source(s) as {len(ids)} job(s) on "
            f"{app.config['HARVEST_QUEUE']}; `onedata worker` runs them."
        )
        return
    jobs = run_with_progress(app, list(sources), dry_run=dry_run)
    print_summary(jobs)
    if any(job.failed for job in jobs):
        sys.exit(1)


@click.command(help="Run harvest jobs queued on ONEDATA_REDIS_URL (RQ worker).")
@click.option("--burst", is_flag=True, help="Stop when the queue is empty.")
@with_app
def worker(app: Flask, burst: bool) -> None:
    from redis import Redis
    from rq import Queue, Worker

    if not app.config.get("REDIS_URL"):
        raise click.ClickException("ONEDATA_REDIS_URL is not set: there is no queue to work on")
    connection = Redis.from_url(app.config["REDIS_URL"])
    queue = Queue(app.config["HARVEST_QUEUE"], connection=connection)
    Worker([queue], connection=connection).work(burst=burst)


def run_with_progress(app: Flask, names: list[str], *, dry_run: bool) -> list[JobSummary]:
    """Run sources concurrently with one progress bar each."""
    lock = threading.Lock()
    with Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
        transient=False,
    ) as progress:
        tasks = {name: progress.add_task(name, total=None) for name in names}

        def update(name: str, event: str, value: int) -> None:
            with lock:
                if event == "total":
                    progress.update(tasks[name], total=value)
                else:
                    progress.update(tasks[name], completed=value)

        return run_many(app, names, dry_run=dry_run, progress=update)


def print_summary(jobs: list[JobSummary]) -> None:
    """The table an operator reads after a run, then each failed or withdrawn item and why."""
    table = Table(
        "source",
        "status",
        "added",
        "updated",
        "unchanged",
        "withdrawn",
        "failed",
        "skipped",
        "errors",
        title="Harvest summary",
    )
    for job in jobs:
        c = job.counts
        errors = job.error or ", ".join(f"{k}×{v}" for k, v in c.get("errors_by_type", {}).items())
        table.add_row(
            job.source,
            job.status.value + (" (dry run)" if job.dry_run else ""),
            *(
                str(c.get(k, 0))
                for k in ("added", "updated", "unchanged", "withdrawn", "failed", "skipped")
            ),
            errors or "",
            style="red" if job.failed else None,
        )
    console.print(table)
    for job in jobs:
        for remote_id, error in job.failures:
            console.print(f"[red]✗[/red] {job.source} · {remote_id}: {error}")
    if any(job.failures for job in jobs):
        console.print(
            "Failed items are kept out of the catalog. Quarantined versions keep their check "
            "report: fix the file at its source and run the harvest again."
        )


def _when(value: object) -> str:
    return value.strftime("%Y-%m-%d %H:%M") if hasattr(value, "strftime") else "never"


__all__ = ["harvest", "print_summary", "run_with_progress", "worker"]
