"""What every ``onedata`` command module shares: the console and the app decorator."""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable
from functools import wraps
from pathlib import Path
from typing import Any, TypeVar

import click
from rich.console import Console

from portal import create_app

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


