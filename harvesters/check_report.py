"""What the checks say: :class:`CheckReport`, its :class:`CheckIssue` items and their severity.

Plain data, JSON round-trippable, stored with every version. Every name here can be imported
from :mod:`harvesters.checks` too.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import asdict, dataclass, field
from enum import StrEnum
from typing import Any

from harvesters.pii import PiiFinding

__all__ = ["CheckIssue", "CheckReport", "Severity"]


class Severity(StrEnum):
    """How bad an issue is: errors block publication, warnings do not."""

    ERROR = "error"
    WARNING = "warning"


@dataclass(frozen=True)
class CheckIssue:
    """One problem found in a table.

    ``code`` is a frictionless error type (``type-error``, ``constraint-error``…) or one of ours:
    ``region-code``, ``reference-error``, ``source-error``, ``source-warning``, ``pii-<detector>``.
    """

    code: str
    message: str
    field: str | None = None
    row: int | None = None
    severity: Severity = Severity.ERROR


@dataclass
class CheckReport:
    """The outcome of :func:`check_table`; plain data, JSON round-trippable."""

    row_count: int
    issues: list[CheckIssue]
    pii: list[PiiFinding]
    schema: dict[str, Any] = field(default_factory=dict)

    @property
    def valid(self) -> bool:
        """No error-level issue and no personal data."""
        return self.error_count == 0 and not self.pii

    @property
    def error_count(self) -> int:
        """Number of error-level issues."""
        return sum(1 for issue in self.issues if issue.severity is Severity.ERROR)

    @property
    def error_counts(self) -> dict[str, int]:
        """Error-level issues grouped by code."""
        return dict(Counter(i.code for i in self.issues if i.severity is Severity.ERROR))

    def to_dict(self) -> dict[str, Any]:
        """JSON-serialisable form (derived counts included for readers that only see JSON)."""
        return {
            "valid": self.valid,
            "row_count": self.row_count,
            "error_count": self.error_count,
            "error_counts": self.error_counts,
            "issues": [{**asdict(i), "severity": i.severity.value} for i in self.issues],
            "pii": [asdict(finding) for finding in self.pii],
            "schema": self.schema,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> CheckReport:
        """Rebuild a report from :meth:`to_dict` output; derived keys are ignored.

        :param data: a dict as produced by :meth:`to_dict`.
        :raises KeyError: when a required key is missing.
        :raises ValueError: when a severity is unknown.
        """
        issues = [
            CheckIssue(
                code=str(item["code"]),
                message=str(item["message"]),
                field=item.get("field"),
                row=item.get("row"),
                severity=Severity(item.get("severity", Severity.ERROR.value)),
            )
            for item in data.get("issues", [])
        ]
        pii = [
            PiiFinding(str(item["column"]), str(item["detector"]), int(item["count"]))
            for item in data.get("pii", [])
        ]
        return cls(int(data["row_count"]), issues, pii, dict(data.get("schema") or {}))
