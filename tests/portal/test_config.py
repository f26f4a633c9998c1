from __future__ import annotations

import pytest

from portal import create_app
from portal.config import load_settings


def test_refuses_missing_secret_outside_testing(tmp_path, monkeypatch):
    monkeypatch.delenv("ONEDATA_SECRET_KEY", raising=False)
    with pytest.raises(RuntimeError, match="ONEDATA_SECRET_KEY"):
        create_app({"INSTANCE_PATH": str(tmp_path)})


@pytest.mark.parametrize("placeholder", ["change-me", "secret", "dev"])
def test_refuses_placeholder_secret(tmp_path, placeholder):
    with pytest.raises(RuntimeError, match="placeholder"):
        create_app({"INSTANCE_PATH": str(tmp_path), "SECRET_KEY": placeholder})


def test_reads_prefixed_environment(monkeypatch):
    monkeypatch.setenv("ONEDATA_PAGE_SIZE", "7")
    monkeypatch.setenv("ONEDATA_PRODUCTION", "true")
    config = load_settings()
    assert config["PAGE_SIZE"] == 7
    assert config["PRODUCTION"] is True


def test_instance_secret_file_is_used(tmp_path):
    from portal.config import write_instance_secret

    path = write_instance_secret(tmp_path)
    app = create_app({"INSTANCE_PATH": str(tmp_path)})
    assert app.config["SECRET_KEY"] == path.read_text().strip()
    assert len(app.config["SECRET_KEY"]) == 64
    assert oct(path.stat().st_mode & 0o777) == "0o600"
