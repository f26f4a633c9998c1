"""Thin blueprints: parse the request, call a service, render."""

from __future__ import annotations

from portal.services.access import ANONYMOUS, Actor


def current_actor() -> Actor:
    """Who is making this request. Anonymous until accounts arrive (access-control issue)."""
    return ANONYMOUS
