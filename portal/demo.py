"""Load the sample OPD sources of ``datasets/`` into an instance (used by ``onedata demo``)."""

from __future__ import annotations

import json
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.orm import Session

from portal.models import Frequency, HarvestSource
from portal.services.harvest import create_source
from portal.services.organizations import ensure_organization


def load_sample_sources(session: Session, datasets_dir: Path) -> list[HarvestSource]:
    """Create every sample OPD and one trusted folder source per OPD folder; idempotent.

    :param datasets_dir: the ``datasets/`` folder (``organizations.json`` + one folder per OPD).
    :raises FileNotFoundError: when ``organizations.json`` is missing.
    """
    entries = json.loads((datasets_dir / "organizations.json").read_text(encoding="utf-8"))
    sources = []
    for entry in entries:
        org = ensure_organization(
            session,
            name=entry["name"],
            title=entry["title"],
            description=entry.get("description", ""),
            url=entry.get("url"),
        )
        folder = datasets_dir / entry["name"]
        if not folder.is_dir():
            continue
        name = f"{org.name}-folder"
        source = session.scalars(select(HarvestSource).where(HarvestSource.name == name)).first()
        if source is None:
            source = create_source(
                session,
                kind="folder",
                url=str(folder.resolve()),
                organization=org,
                name=name,
                title=f"{org.title} (folder)",
                trusted=True,
                frequency=Frequency.DAILY,
            )
        sources.append(source)
    return sources
