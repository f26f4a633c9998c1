"""The security log page's filter: what may be typed, and the SQL conditions it becomes."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from flask_babel import gettext as _
from sqlalchemy import ColumnElement, or_

from portal.errors import Invalid
from portal.models.events import EventOutcome, EventSeverity, SecurityEvent

SEVERITIES = list(EventSeverity)  # least to most urgent
#: How a time may be typed in the filter, and the span it then covers.
_TIME_FORMATS = {
    "%Y-%m-%d": timedelta(days=1),
    "%Y-%m-%dT%H:%M": timedelta(minutes=1),
    "%Y-%m-%dT%H:%M:%S": timedelta(seconds=1),
}



@dataclass(frozen=True)
class LogFilter:
    """The list's filter, as typed in its form (times in UTC, ``until`` inclusive)."""

    tag: str = ""
    actor: str = ""
    opd: str = ""
    outcome: str = ""
    severity: str = ""
    since: str = ""
    until: str = ""

    @classmethod
    def from_args(cls, args: Any) -> LogFilter:
        """Read the query string; refuse values that are not in their catalogue.

        :raises Invalid: when the outcome, severity, a time or the tag is malformed.
        """
        values = {name: str(args.get(name, "")).strip()[:64] for name in cls.__dataclass_fields__}
        flt = cls(**values)
        if flt.outcome and flt.outcome not in {o.value for o in EventOutcome}:
            raise Invalid(_("Unknown outcome."))
        if flt.severity and flt.severity not in {s.value for s in SEVERITIES}:
            raise Invalid(_("Unknown severity."))
        if flt.tag and not all(c.isalnum() or c in ":_" for c in flt.tag):
            raise Invalid(_("A tag holds only letters, digits, colons and underscores."))
        for value in (flt.since, flt.until):
            if value:
                _parse_time(value)
        return flt

    def as_args(self) -> dict[str, str]:
        """The filter's non-empty fields, for links and for the read event's details."""
        return {name: value for name, value in asdict(self).items() if value}

    def conditions(self) -> list[ColumnElement[bool]]:
        """SQL conditions selecting the records this filter keeps."""
        found: list[ColumnElement[bool]] = []
        if self.tag:
            found.append(SecurityEvent.tag.startswith(self.tag, autoescape=True))
        if self.actor:
            found.append(SecurityEvent.actor_id == self.actor)
        if self.opd:  # actor_org lists the actor's OPD ids, comma-separated
            org = SecurityEvent.actor_org
            found.append(
                or_(
                    org == self.opd,
                    org.startswith(f"{self.opd},", autoescape=True),
                    org.endswith(f",{self.opd}", autoescape=True),
                    org.contains(f",{self.opd},", autoescape=True),
                )
            )
        if self.outcome:
            found.append(SecurityEvent.outcome == EventOutcome(self.outcome))
        if self.severity:
            levels = SEVERITIES[SEVERITIES.index(EventSeverity(self.severity)) :]
            found.append(SecurityEvent.severity.in_(levels))
        if self.since:
            start, _step = _parse_time(self.since)
            found.append(SecurityEvent.ts >= start)
        if self.until:
            end, step = _parse_time(self.until)
            found.append(SecurityEvent.ts < end + step)  # the whole day, minute or second
        return found


def _parse_time(value: str) -> tuple[datetime, timedelta]:
    """A UTC time typed as a date, or a date and time; and the precision it was typed with."""
    for fmt, step in _TIME_FORMATS.items():
        try:
            return datetime.strptime(value, fmt).replace(tzinfo=UTC), step
        except ValueError:
            continue
    raise Invalid(_("Times are written YYYY-MM-DD or YYYY-MM-DDTHH:MM (UTC)."))
