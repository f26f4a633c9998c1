"""File storage behind one interface. Local folder now; S3-compatible storage comes later."""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

from flask import Flask, current_app


class LocalStorage:
    """Immutable files under a root folder, written atomically (temp file + rename)."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def path(self, key: str) -> Path:
        """Absolute path of ``key``; refuses keys that escape the root."""
        target = (self.root / key).resolve()
        if not target.is_relative_to(self.root.resolve()):
            raise ValueError(f"storage key escapes the storage root: {key!r}")
        return target

    def exists(self, key: str) -> bool:
        return self.path(key).is_file()

    def put_file(self, key: str, src: Path) -> None:
        """Copy ``src`` to ``key`` unless it is already there (content-addressed keys)."""
        target = self.path(key)
        if target.is_file():
            return
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=".tmp-")
        os.close(fd)
        try:
            shutil.copyfile(src, tmp)
            os.chmod(tmp, 0o444)
            os.replace(tmp, target)
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)

    def staging_dir(self) -> Path:
        """A fresh private folder for staging files (same filesystem as the store)."""
        base = self.root / ".staging"
        base.mkdir(parents=True, exist_ok=True)
        return Path(tempfile.mkdtemp(dir=base))


def init_app(app: Flask) -> None:
    url = str(app.config["STORAGE_URL"])
    if "://" in url and not url.startswith("file://"):
        raise RuntimeError(f"ONEDATA_STORAGE_URL: unsupported storage {url!r} (use a folder path)")
    root = Path(url.removeprefix("file://"))
    root.mkdir(parents=True, exist_ok=True)
    app.extensions["onedata.storage"] = LocalStorage(root)


def get_storage() -> LocalStorage:
    storage: LocalStorage = current_app.extensions["onedata.storage"]
    return storage
