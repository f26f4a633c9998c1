"""What every ``onedata`` command module shares: the console, the app decorator, the transaction."""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from functools import wraps
from pathlib import Path
from typing import Any, TypeVar

import click
from rich.console import Console
from sqlalchemy.orm import Session

from portal import create_app, db
from portal.errors import PortalError

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


@contextmanager
def operator_transaction() -> Iterator[Session]:
    """One transaction of an operator's command; a refusal (a :class:`PortalError`) rolls it back
    and becomes the command's error message and a non-zero exit."""
    try:
        with db.transaction() as session:
            yield session
    except PortalError as exc:
        raise click.ClickException(exc.message) from exc
