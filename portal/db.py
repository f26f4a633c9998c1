"""Engine, sessions and the request-scoped session (one transaction per request)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from flask import Flask, current_app, g
from sqlalchemy import Engine, create_engine, event
from sqlalchemy.orm import Session, sessionmaker


def make_engine(url: str) -> Engine:
    """Create the engine for ``url``; SQLite gets foreign keys, WAL and a busy timeout."""
    kwargs: dict[str, Any] = {"future": True}
    if url.startswith("sqlite"):
        kwargs["connect_args"] = {"timeout": 30, "check_same_thread": False}
    else:
        kwargs["pool_pre_ping"] = True
    engine = create_engine(url, **kwargs)
    if url.startswith("sqlite"):
        event.listen(engine, "connect", _sqlite_pragmas)
    return engine


def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA foreign_keys=ON")
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.close()


def init_app(app: Flask) -> None:
    engine = make_engine(app.config["DATABASE_URL"])
    app.extensions["onedata.engine"] = engine
    app.extensions["onedata.sessionmaker"] = sessionmaker(engine, expire_on_commit=False)
    app.teardown_appcontext(_close_session)


def get_engine() -> Engine:
    engine: Engine = current_app.extensions["onedata.engine"]
    return engine


def new_session() -> Session:
    """A fresh session outside the request scope (CLI, harvest workers)."""
    factory: sessionmaker[Session] = current_app.extensions["onedata.sessionmaker"]
    return factory()


def get_session() -> Session:
    """The request's session; views read through it, the request commits once at teardown."""
    if "db_session" not in g:
        g.db_session = new_session()
    session: Session = g.db_session
    return session


@contextmanager
def transaction() -> Iterator[Session]:
    """A unit of work outside a request: commit on success, roll back on error."""
    session = new_session()
    try:
        yield session
        session.commit()
    except BaseException:
        session.rollback()
        raise
    finally:
        session.close()


def _close_session(exc: BaseException | None) -> None:
    session: Session | None = g.pop("db_session", None)
    if session is None:
        return
    try:
        if exc is None and session.is_active:
            session.commit()
        else:
            session.rollback()
    finally:
        session.close()
