"""Thin blueprints: parse the request, call a service, render."""

from __future__ import annotations

from portal.identity import current_actor, current_user

__all__ = ["current_actor", "current_user"]
