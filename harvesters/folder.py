"""The folder harvester: a local folder of CSV/XLSX files, each with an optional sidecar.

Layout: ``<folder>/<slug>.csv`` (or ``.xlsx``) and ``<folder>/<slug>.meta.json`` holding the
dataset's metadata (title, description, schema, topic, tags, licence, access level, ...).
A file without a sidecar is still harvested, titled after its file name.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from harvesters.base import HarvestedItem, Harvester, attach_table
from harvesters.encoding import normalise_csv
from harvesters.errors import InvalidItem, SourceUnavailable

FORMATS = {".csv": "csv", ".xlsx": "xlsx"}
SIDECAR = ".meta.json"


class FolderHarvester(Harvester):
    kind = "folder"

    @property
    def folder(self) -> Path:
        return Path(self.source.url.removeprefix("file://"))

    def gather(self) -> Iterable[str]:
        """List the data files of the folder, by slug.

        :raises SourceUnavailable: when the folder does not exist.
        """
        if not self.folder.is_dir():
            raise SourceUnavailable(f"folder not found: {self.folder}")
        for path in sorted(self.folder.iterdir()):
            if path.is_file() and path.suffix.lower() in FORMATS:
                yield path.stem

    def fetch(self, remote_id: str) -> HarvestedItem:
        """Stage the data file of ``remote_id`` and read its sidecar.

        :raises InvalidItem: when the sidecar is not valid JSON or the file vanished.
        """
        data = self._data_file(remote_id)
        metadata = self._sidecar(remote_id)
        metadata.setdefault("title", remote_id.replace("-", " ").replace("_", " ").title())
        fmt = FORMATS[data.suffix.lower()]
        with data.open("rb") as stream:
            staged = self.stage_stream(
                stream,
                remote_id=data.name,
                title=str(metadata.get("resource_title") or metadata["title"]),
                filename=data.name,
                fmt=fmt,
            )
        raw: dict[str, Any] = {"sidecar": metadata}
        if fmt == "csv":
            normalised = staged.path.with_name(staged.path.name + ".utf8")
            detected = normalise_csv(staged.path, normalised)
            raw.update(detected)
            if normalised.exists() and detected.get("rewritten"):
                staged = attach_table(staged, normalised)
            normalised.unlink(missing_ok=True)
        return HarvestedItem(remote_id, metadata, [staged], raw=raw)

    def _data_file(self, remote_id: str) -> Path:
        for suffix in FORMATS:
            for candidate in (
                self.folder / f"{remote_id}{suffix}",
                self.folder / f"{remote_id}{suffix.upper()}",
            ):
                if candidate.is_file():
                    return candidate
        raise InvalidItem(f"data file for {remote_id!r} is no longer in {self.folder}")

    def _sidecar(self, remote_id: str) -> dict[str, Any]:
        path = self.folder / f"{remote_id}{SIDECAR}"
        if not path.is_file():
            return {}
        try:
            loaded = json.loads(path.read_text(encoding="utf-8-sig"))
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise InvalidItem(f"{path.name}: not valid UTF-8 JSON ({exc})") from exc
        if not isinstance(loaded, dict):
            raise InvalidItem(f"{path.name}: expected a JSON object")
        return loaded
