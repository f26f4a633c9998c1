"""The information-security SOP names only commands, pages and settings that exist.

``docs/sop-keamanan-informasi.md`` says for every step which screen or command carries it out.
This test reads every inline code span and every fenced block of the SOP and fails when:

- an ``onedata …`` command (or one of its ``--options``) is not a command of ``portal.cli.main``;
- a ``/path`` has no rule in the application's URL map (``<…>`` placeholders match any
  placeholder; a query string is ignored), unless the path is in :data:`NOT_YET` and the SOP
  marks it "(belum tersedia)" right after it;
- an ``ONEDATA_…`` variable is not a setting of ``portal.config.SETTINGS``.
"""

from __future__ import annotations

import re
import shlex
import uuid
from collections.abc import Iterator
from pathlib import Path

import click
import pytest
from flask import Flask
from werkzeug.exceptions import MethodNotAllowed, NotFound
from werkzeug.routing import RequestRedirect

from portal import create_app
from portal.cli import main
from portal.config import SETTINGS
from portal.services import log_forward

ROOT = Path(__file__).resolve().parent.parent
SOP = ROOT / "docs" / "sop-keamanan-informasi.md"
MARK = "(belum tersedia)"
#: Pages the SOP needs that are built but not yet served by ``create_app``; each must be marked
#: "(belum tersedia)" in the SOP. Remove an entry (and its mark) as soon as the page is served:
#: the test fails while an entry names a page that exists.
NOT_YET: dict[str, str] = {}
FENCE = re.compile(r"^```.*?^```", re.MULTILINE | re.DOTALL)
SPAN = re.compile(r"`([^`\n]+)`")
PLACEHOLDER = re.compile(r"<[^>]+>")


def sop_text() -> str:
    return SOP.read_text(encoding="utf-8")


def inline_spans() -> list[str]:
    return SPAN.findall(FENCE.sub("", sop_text()))


def commands() -> list[str]:
    found = [span for span in inline_spans() if span.split(" ", 1)[0] == "onedata"]
    for block in FENCE.findall(sop_text()):
        for line in block.splitlines():
            found += re.findall(r"\bonedata(?:\s+[^\s;|&]+)+", line)
    return found


def paths() -> list[str]:
    return [span for span in inline_spans() if span.startswith("/")]


@pytest.fixture(scope="module")
def app(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Flask]:
    instance = tmp_path_factory.mktemp("sop")
    app = create_app(
        {
            "TESTING": True,
            "SECRET_KEY": uuid.uuid4().hex * 2,
            "DATABASE_URL": f"sqlite:///{instance / 'sop.sqlite'}",
            "INSTANCE_PATH": str(instance),
        }
    )
    if "security_log" not in app.blueprints:
        # Until create_app calls security_log.init_app (see the security-log report); then this
        # branch is dead and can go.
        from portal.views import security_log

        security_log.init_app(app)
    yield app
    log_forward.remove_handlers(app.extensions["onedata.engine"])
    app.extensions["onedata.engine"].dispose()


def command_problem(command: str) -> str | None:
    """Why ``command`` is not a command of ``onedata``, or ``None`` when it is."""
    words = shlex.split(command)[1:]
    current: click.Command = main
    trail = ["onedata"]
    while isinstance(current, click.Group) and words and not words[0].startswith("-"):
        sub = current.commands.get(words[0])
        if sub is None:
            return f"{' '.join(trail)} has no command {words[0]!r}"
        trail.append(words.pop(0))
        current = sub
    options = {name for param in current.params for name in (*param.opts, *param.secondary_opts)}
    for word in words:
        if word.startswith("--") and word.split("=", 1)[0] not in options:
            return f"{' '.join(trail)} has no option {word.split('=', 1)[0]}"
    return None


def route_exists(app: Flask, path: str) -> bool:
    path = path.split("?", 1)[0].split("#", 1)[0]
    if PLACEHOLDER.search(path):
        shape = PLACEHOLDER.sub("<>", path)
        return any(PLACEHOLDER.sub("<>", rule.rule) == shape for rule in app.url_map.iter_rules())
    adapter = app.url_map.bind("localhost")
    try:
        adapter.match(path, method="GET")
    except (MethodNotAllowed, RequestRedirect):
        return True
    except NotFound:
        return False
    return True


def test_the_sop_names_commands_and_pages():
    assert len(commands()) > 20 and len(paths()) > 20  # the parser found what the SOP holds


def test_every_command_in_the_sop_exists():
    problems = {command: command_problem(command) for command in commands()}
    assert not {c: p for c, p in problems.items() if p}, "the SOP names commands that do not exist"


def test_every_page_in_the_sop_exists_or_is_marked_not_yet_available(app):
    text = sop_text()
    missing = sorted({p.split("?", 1)[0] for p in paths() if not route_exists(app, p)})
    unexplained = [p for p in missing if p not in NOT_YET]
    assert not unexplained, f"the SOP names pages that do not exist: {unexplained}"
    unmarked = [p for p in missing if f"`{p}` {MARK}" not in text]
    assert not unmarked, f"mark these {MARK} in the SOP, or point the step at a command: {unmarked}"
    stale = [p for p in NOT_YET if route_exists(app, p)]
    assert not stale, f"these pages exist now: drop them from NOT_YET and their {MARK}: {stale}"
    marked = re.findall(r"`([^`\n]+)` " + re.escape(MARK), text)
    assert set(marked) <= set(NOT_YET), f"{MARK} on a page that is not in NOT_YET: {marked}"


def test_every_setting_in_the_sop_exists():
    named = set(re.findall(r"ONEDATA_([A-Z0-9_]+)", " ".join(inline_spans())))
    assert named and not named - set(SETTINGS), f"unknown settings: {named - set(SETTINGS)}"


@pytest.mark.parametrize(
    ("command", "problem"),
    [
        ("onedata security verify", None),
        ("onedata security archive --before 2025-01-01 --output x.gz", None),
        ("onedata security frobnicate", "onedata security has no command 'frobnicate'"),
        ("onedata security export --colour", "onedata security export has no option --colour"),
        ("onedata nothing", "onedata has no command 'nothing'"),
    ],
)
def test_the_command_check_itself(command, problem):
    assert command_problem(command) == problem


def test_the_page_check_itself(app):
    assert route_exists(app, "/admin/security-log?tag=auth:")
    assert route_exists(app, "/admin/security-log/<seq>")
    assert route_exists(app, "/admin/security-log/42")
    assert route_exists(app, "/logout")  # POST only: the page exists
    assert not route_exists(app, "/admin/security-log/<seq>/edit")
    assert not route_exists(app, "/admin/nowhere")
