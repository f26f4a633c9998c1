"""The ``onedata`` command: init, demo, serve, harvest, review."""

from __future__ import annotations

import os
import shutil
import sys
from collections.abc import Callable
from functools import wraps
from pathlib import Path
from typing import Any, TypeVar

import click
from flask import Flask
from rich.console import Console
from rich.table import Table

from portal import config as settings
from portal import create_app, db, migrate
from portal.models import Frequency, HarvestJob, JobStatus

F = TypeVar("F", bound=Callable[..., Any])
#: Wide enough for the harvest summary even when stdout is not a terminal.
console = Console(highlight=False, width=max(shutil.get_terminal_size((140, 24)).columns, 120))


def instance_path() -> Path:
    return Path(os.environ.get("ONEDATA_INSTANCE_PATH") or "instance").resolve()


def with_app(func: F) -> F:
    """Build the app and run the command inside its application context."""

    @wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            app = create_app({"INSTANCE_PATH": str(instance_path())})
        except RuntimeError as exc:
            raise click.ClickException(str(exc)) from exc
        with app.app_context():
            return func(app, *args, **kwargs)

    return wrapper  # type: ignore[return-value]


@click.group(help="One Data portal of Kota Pontianak.")
def main() -> None:
    pass


@main.command(help="Create the instance folder, its secret key and the database tables.")
def init() -> None:
    _init()
    console.print(f"Instance ready in [bold]{instance_path()}[/bold].")


def _init() -> Flask:
    if not os.environ.get("ONEDATA_SECRET_KEY"):
        settings.write_instance_secret(instance_path())
    app = create_app({"INSTANCE_PATH": str(instance_path())})
    with app.app_context():
        migrate.upgrade(db.get_engine())
    return app


@main.command(help="Initialise an embedded instance, harvest the sample sources, and serve.")
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=5000, show_default=True, type=int)
@click.option("--no-serve", is_flag=True, help="Stop after harvesting.")
def demo(host: str, port: int, no_serve: bool) -> None:
    from portal.demo import load_sample_sources

    app = _init()
    with app.app_context():
        with db.transaction() as session:
            sources = load_sample_sources(session, Path(app.config["DATASETS_PATH"]))
            names = [s.name for s in sources]
        console.print(
            f"Harvesting {len(names)} sample sources from {app.config['DATASETS_PATH']} …"
        )
        jobs = _run_sources(app, names, dry_run=False)
    _summary(jobs)
    if not no_serve:
        console.print(f"\nServing on [bold]http://{host}:{port}[/bold]  (Ctrl+C to stop)")
        app.run(host=host, port=port, debug=False, use_reloader=False)


@main.command(help="Serve the portal with the built-in server (use gunicorn in production).")
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=5000, show_default=True, type=int)
@with_app
def serve(app: Flask, host: str, port: int) -> None:
    app.run(host=host, port=port, debug=False, use_reloader=False)


@main.group(help="Harvest sources and runs.")
def harvest() -> None:
    pass


@harvest.command("list", help="List harvest sources with their last run.")
@with_app
def harvest_list(app: Flask) -> None:
    from portal.services.harvest import list_sources

    with db.transaction() as session:
        table = Table("source", "kind", "OPD", "trusted", "last run", "status", "url")
        for s in list_sources(session):
            job = s.jobs[0] if s.jobs else None
            table.add_row(
                s.name,
                s.kind,
                s.organization.name,
                "yes" if s.trusted else "no",
                job.started_at.strftime("%Y-%m-%d %H:%M") if job and job.started_at else "never",
                job.status.value if job else "-",
                s.url,
            )
        console.print(table)


@harvest.command("add", help="Register a harvest source for an OPD.")
@click.option("--kind", required=True, help="Source kind, e.g. folder.")
@click.option("--url", required=True, help="URL (or folder path) of the source.")
@click.option("--org", "org_name", required=True, help="Name of the OPD that owns the source.")
@click.option("--name", default=None, help="Unique source name (default: <org>-<kind>).")
@click.option("--frequency", type=click.Choice([f.value for f in Frequency]), default="harian")
@click.option("--trusted", is_flag=True, help="Publish clean versions without review.")
@with_app
def harvest_add(
    app: Flask, kind: str, url: str, org_name: str, name: str | None, frequency: str, trusted: bool
) -> None:
    from portal.errors import PortalError
    from portal.services.catalog import get_organization
    from portal.services.harvest import create_source

    try:
        with db.transaction() as session:
            source = create_source(
                session,
                kind=kind,
                url=url,
                organization=get_organization(session, org_name),
                name=name,
                trusted=trusted,
                frequency=Frequency(frequency),
            )
            console.print(f"Added source [bold]{source.name}[/bold].")
    except PortalError as exc:
        raise click.ClickException(exc.message) from exc


@harvest.command("run", help="Harvest the named sources, or all of them with --all.")
@click.argument("sources", nargs=-1)
@click.option("--all", "run_all", is_flag=True, help="Run every active source.")
@click.option("--dry-run", is_flag=True, help="Show what would change; store nothing.")
@with_app
def harvest_run(app: Flask, sources: tuple[str, ...], run_all: bool, dry_run: bool) -> None:
    from portal.services.harvest import list_sources

    if not sources and not run_all:
        raise click.UsageError("name one or more sources, or pass --all")
    if run_all:
        with db.transaction() as session:
            sources = tuple(s.name for s in list_sources(session) if s.active)
    jobs = _run_sources(app, list(sources), dry_run=dry_run)
    _summary(jobs)
    if any(job.status is JobStatus.FAILED for job in jobs):
        sys.exit(1)


def _run_sources(app: Flask, names: list[str], *, dry_run: bool) -> list[HarvestJob]:
    from portal.errors import NotFound
    from portal.services.harvest import get_source, run_source
    from portal.storage import get_storage

    jobs = []
    schemas = Path(app.config["SCHEMAS_PATH"])
    for name in names:
        session = db.new_session()
        try:
            try:
                source = get_source(session, name)
            except NotFound as exc:
                raise click.ClickException(exc.message) from exc
            with console.status(f"[bold]{name}[/bold]: harvesting …") as status:

                def progress(
                    result: Any, index: int, status: Any = status, name: str = name
                ) -> None:
                    status.update(
                        f"[bold]{name}[/bold]: {index + 1} items · last {result.remote_id}"
                        f" → {result.outcome.value}"
                    )

                job = run_source(
                    session,
                    get_storage(),
                    source,
                    schemas_dir=schemas,
                    reference_dir=schemas / "reference",
                    max_file_size=app.config["MAX_FILE_SIZE"],
                    dry_run=dry_run,
                    on_item=progress,
                )
            job.source.name  # load before the session closes  # noqa: B018
            job.failures = [  # type: ignore[attr-defined]
                (item.remote_id, item.error or item.error_type or "")
                for item in job.items
                if item.outcome.value == "failed"
            ]
            jobs.append(job)
        finally:
            session.close()
    return jobs


def _summary(jobs: list[HarvestJob]) -> None:
    table = Table(
        "source",
        "status",
        "added",
        "updated",
        "unchanged",
        "failed",
        "skipped",
        "errors",
        title="Harvest summary",
    )
    for job in jobs:
        c = job.counts
        errors = job.error or ", ".join(f"{k}×{v}" for k, v in c.get("errors_by_type", {}).items())
        style = "red" if job.status is JobStatus.FAILED else None
        table.add_row(
            job.source.name,
            job.status.value + (" (dry run)" if job.dry_run else ""),
            *(str(c.get(k, 0)) for k in ("added", "updated", "unchanged", "failed", "skipped")),
            errors or "",
            style=style,
        )
    console.print(table)
    for job in jobs:
        for remote_id, error in getattr(job, "failures", []):
            console.print(f"[red]✗[/red] {job.source.name} · {remote_id}: {error}")
    if any(getattr(job, "failures", []) for job in jobs):
        console.print(
            "Failed items are kept out of the catalog. Quarantined versions keep their check "
            "report: fix the file at its source and run the harvest again."
        )


@main.group(help="Versions waiting for a steward (until the workspace exists).")
def review() -> None:
    pass


@review.command("list", help="List versions waiting for review.")
@with_app
def review_list(app: Flask) -> None:
    from portal.services.publishing import pending_versions

    with db.transaction() as session:
        table = Table("dataset", "resource", "version", "rows", "harvested")
        for v in pending_versions(session):
            table.add_row(
                v.resource.dataset.name,
                v.resource.name,
                str(v.number),
                str(v.row_count),
                v.created_at.strftime("%Y-%m-%d %H:%M"),
            )
        console.print(table)


@review.command("approve", help="Publish the versions of DATASET that wait for review.")
@click.argument("dataset")
@click.option("--note", default="", help="Change note kept with the version.")
@with_app
def review_approve(app: Flask, dataset: str, note: str) -> None:
    _decide(dataset, approve=True, text=note)


@review.command("reject", help="Refuse the versions of DATASET that wait for review.")
@click.argument("dataset")
@click.option("--reason", required=True, help="Why, for the producer.")
@with_app
def review_reject(app: Flask, dataset: str, reason: str) -> None:
    _decide(dataset, approve=False, text=reason)


def _decide(dataset: str, *, approve: bool, text: str) -> None:
    from portal.services.access import OPERATOR
    from portal.services.publishing import pending_versions, publish_version, reject_version

    with db.transaction() as session:
        versions = [v for v in pending_versions(session) if v.resource.dataset.name == dataset]
        if not versions:
            raise click.ClickException(f"no version of {dataset!r} is waiting for review")
        for v in versions:
            if approve:
                publish_version(session, OPERATOR, v, text)
            else:
                reject_version(session, OPERATOR, v, text)
            verb = "published" if approve else "rejected"
            console.print(f"{dataset} · {v.resource.name} · version {v.number}: {verb}")


if __name__ == "__main__":
    main()
