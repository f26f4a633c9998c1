"""``onedata review …``: a steward's decisions at the server's console (until the workspace exists).

Every command acts as the console operator (:data:`portal.services.access.OPERATOR`) through the
same services the workspace will call, so the same rules apply and the same events are logged.
"""

from __future__ import annotations

import click
from flask import Flask
from rich.table import Table
from sqlalchemy.orm import Session

from portal import db
from portal.cli_common import console, operator_transaction, with_app
from portal.errors import PortalError
from portal.models import Dataset
from portal.services.access import OPERATOR


@click.group(help="Versions waiting for a steward, and a steward's decisions.")
def review() -> None:
    pass


def _dataset(session: Session, name: str) -> Dataset:
    from portal.services.catalog import get_dataset

    return get_dataset(session, OPERATOR, name)


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
    from portal.services.publishing import pending_versions, publish_version, reject_version

    with operator_transaction() as session:
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


@review.command(
    "override",
    help="Publish the quarantined newest versions of DATASET despite their check errors "
    "(never possible for personal data).",
)
@click.argument("dataset")
@click.option("--reason", required=True, help="Why the errors are acceptable (logged).")
@with_app
def review_override(app: Flask, dataset: str, reason: str) -> None:
    from portal.services.review import latest_quarantined, override_version

    with operator_transaction() as session:
        versions = latest_quarantined(_dataset(session, dataset))
        if not versions:
            raise click.ClickException(f"no newest version of {dataset!r} is quarantined")
        for v in versions:
            override_version(session, OPERATOR, v, reason)
            console.print(
                f"{dataset} · {v.resource.name} · version {v.number}: published by override"
            )


@review.command("withdraw", help="Take the published DATASET away from the public.")
@click.argument("dataset")
@click.option("--reason", required=True, help="Why (logged).")
@with_app
def review_withdraw(app: Flask, dataset: str, reason: str) -> None:
    from portal.services.review import withdraw_dataset

    with operator_transaction() as session:
        withdraw_dataset(session, OPERATOR, _dataset(session, dataset), reason)
    console.print(f"{dataset}: withdrawn")


@review.command("edit", help="Edit the metadata of DATASET: --set field=value (repeatable).")
@click.argument("dataset")
@click.option(
    "--set",
    "assignments",
    multiple=True,
    required=True,
    metavar="FIELD=VALUE",
    help="e.g. --set title='Harga Pangan' --set tags=pangan,harga --set access_level=restricted",
)
@with_app
def review_edit(app: Flask, dataset: str, assignments: tuple[str, ...]) -> None:
    from portal.services.review import EDITABLE_FIELDS, edit_dataset_metadata

    changes: dict[str, str] = {}
    for assignment in assignments:
        field, sep, value = assignment.partition("=")
        if not sep or not field.strip():
            raise click.BadParameter(f"{assignment!r} is not FIELD=VALUE", param_hint="--set")
        changes[field.strip()] = value
    try:
        with db.transaction() as session:
            changed = edit_dataset_metadata(session, OPERATOR, _dataset(session, dataset), changes)
    except PortalError as exc:
        fields = [f"{e['field']}: {e['message']}" for e in exc.errors if e.get("field")]
        if not fields:
            raise click.ClickException(exc.message) from exc
        raise click.ClickException(
            f"{exc.message}: {'; '.join(fields)} (editable: {', '.join(EDITABLE_FIELDS)})"
        ) from exc
    console.print(f"{dataset}: " + (f"changed {', '.join(changed)}" if changed else "no change"))
