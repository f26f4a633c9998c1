"""The README documents every setting; every UI text has an Indonesian translation."""

from __future__ import annotations

import re
from pathlib import Path

from babel.messages.catalog import Catalog
from babel.messages.pofile import read_po

from portal.config import SETTINGS

PATTERN = r"""_\(\s*(?:"([^"]+)"|'([^']+)')"""
ROOT = Path(__file__).resolve().parent.parent


def _read(relative: str) -> Catalog:
    with (ROOT / relative).open("rb") as fh:
        return read_po(fh)


def test_every_setting_is_in_the_readme():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    missing = [key for key in SETTINGS if f"`ONEDATA_{key}`" not in readme]
    assert not missing, f"README.md does not document: {missing}"


def test_readme_shows_the_two_commands_first():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert readme.index("make demo") < readme.index("## Configuration")
    assert readme.index("make test") < readme.index("## Configuration")


def test_every_text_is_translated_to_indonesian():
    template = _read("portal/translations/messages.pot")
    catalog = _read("portal/translations/id/LC_MESSAGES/messages.po")
    missing = []
    for message in template:
        if not message.id:
            continue
        translated = catalog.get(message.id)
        strings = translated.string if translated else None
        if not strings or (isinstance(strings, tuple) and not all(strings)):
            missing.append(message.id)
        elif translated is not None and translated.fuzzy:
            missing.append(message.id)
    assert not missing, f"untranslated in id: {missing}"


def test_template_is_up_to_date():
    """Every `_()` text used in templates is in the extracted template (run `make messages`)."""
    template = _read("portal/translations/messages.pot")
    known = {m.id if isinstance(m.id, str) else m.id[0] for m in template if m.id}
    used = set()
    for path in (ROOT / "portal/templates").rglob("*.html"):
        found = re.findall(PATTERN, path.read_text(encoding="utf-8"))
        used |= {a or b for a, b in found}
    assert not used - known, f"run `make messages`: {sorted(used - known)}"


def test_every_event_tag_is_in_the_readme():
    from portal.services.events import EventTag

    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    missing = [tag.value for tag in EventTag if f"`{tag.value}`" not in readme]
    assert not missing, f"README.md does not document: {missing}"


def test_every_permission_is_in_the_readme():
    from portal.services.access import Permission

    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    missing = [p.value for p in Permission if f"`{p.value}`" not in readme]
    assert not missing, f"README.md does not document: {missing}"
