"""The ``onedata`` commands run in tests, against the test's own app (database, files)."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import click
import pytest
from click.testing import CliRunner, Result
from flask import Flask

Invoke = Callable[..., Result]


@contextmanager
def command_runner(
    app: Flask,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    group: click.Group,
    env: Mapping[str, str] | None = None,
) -> Iterator[Invoke]:
    """Run ``group``'s commands against ``app``'s database, as an operator at the console would.

    ``invoke(*args, input=None, **more_env)`` runs one command line; the apps the commands build
    are disposed of afterwards.

    :param tmp_path: where the commands' instance folder goes.
    :param env: more ``ONEDATA_*`` variables for every command.
    """
    import portal
    import portal.cli_common

    built: list[Flask] = []

    def create_app(config: dict[str, Any]) -> Flask:
        built.append(portal.create_app(config))
        return built[-1]

    monkeypatch.setattr(portal.cli_common, "create_app", create_app)
    base = {
        "ONEDATA_INSTANCE_PATH": str(tmp_path / "cli-instance"),
        "ONEDATA_DATABASE_URL": app.config["DATABASE_URL"],
        "ONEDATA_SECRET_KEY": uuid.uuid4().hex * 2,
        **(env or {}),
    }

    def invoke(*args: str, input: str | None = None, **more_env: str | None) -> Result:
        return CliRunner().invoke(
            group, list(args), env={**base, **more_env}, input=input, catch_exceptions=False
        )

    try:
        yield invoke
    finally:
        for built_app in built:
            built_app.extensions["onedata.engine"].dispose()
