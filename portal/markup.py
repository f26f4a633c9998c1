"""Markdown in descriptions, rendered and sanitised (nh3) before it reaches a page."""

from __future__ import annotations

import markdown as md
import nh3
from flask import Flask
from markupsafe import Markup

ALLOWED_TAGS = {
    "a",
    "abbr",
    "b",
    "blockquote",
    "br",
    "code",
    "em",
    "h3",
    "h4",
    "h5",
    "hr",
    "i",
    "li",
    "ol",
    "p",
    "pre",
    "strong",
    "table",
    "tbody",
    "td",
    "th",
    "thead",
    "tr",
    "ul",
}


def render_markdown(text: str | None) -> Markup:
    """Markdown → HTML with only safe tags; links get ``rel="nofollow noopener"``."""
    html = md.markdown(text or "", extensions=["tables"], output_format="html")
    cleaned = nh3.clean(html, tags=ALLOWED_TAGS, link_rel="nofollow noopener noreferrer")
    return Markup(cleaned)  # noqa: S704 - sanitised by nh3 just above


def plain_text(text: str | None) -> str:
    """Markdown → plain text, for summaries and cards."""
    html = md.markdown(text or "", output_format="html")
    return (
        nh3.clean(html, tags=set()).replace("&gt;", ">").replace("&lt;", "<").replace("&amp;", "&")
    )


def init_app(app: Flask) -> None:
    app.add_template_filter(render_markdown, "markdown")
    app.add_template_filter(plain_text, "plain")
