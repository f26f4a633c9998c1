"""Languages: Bahasa Indonesia by default, English on request (``?lang=en``, then a cookie)."""

from __future__ import annotations

from flask import Flask, Response, current_app, g, request
from flask_babel import Babel
from flask_babel import lazy_gettext as _l

from portal.models import Frequency

LANGUAGES = {"id": "Bahasa Indonesia", "en": "English"}
COOKIE = "lang"
#: The Satu Data update frequencies (stored by their Indonesian names), as the page's language says.
FREQUENCY_LABELS = {
    Frequency.DAILY: _l("daily"),
    Frequency.WEEKLY: _l("weekly"),
    Frequency.MONTHLY: _l("monthly"),
    Frequency.QUARTERLY: _l("quarterly"),
    Frequency.SEMIANNUAL: _l("every six months"),
    Frequency.ANNUAL: _l("yearly"),
    Frequency.IRREGULAR: _l("irregular"),
}


def frequency_label(value: Frequency | str | None) -> str:
    """``harian`` → "daily" in English, "harian" in Bahasa Indonesia; ``None`` → ""."""
    if value is None:
        return ""
    return str(FREQUENCY_LABELS.get(Frequency(value), value))


def select_locale() -> str:
    chosen = request.args.get("lang") or request.cookies.get(COOKIE)
    if chosen in LANGUAGES:
        return chosen
    default: str = current_app.config.get("DEFAULT_LOCALE", "id")
    return default if default in LANGUAGES else "id"


def init_app(app: Flask) -> None:
    Babel(app, locale_selector=select_locale, default_translation_directories="translations")

    @app.after_request
    def remember_language(response: Response) -> Response:
        chosen = request.args.get("lang")
        if chosen in LANGUAGES and chosen != request.cookies.get(COOKIE):
            response.set_cookie(
                COOKIE,
                chosen,
                max_age=365 * 24 * 3600,
                samesite="Lax",
                httponly=True,
                secure=bool(app.config.get("PRODUCTION")),
            )
        return response

    app.add_template_global(frequency_label)

    @app.context_processor
    def languages() -> dict[str, object]:
        return {"LANGUAGES": LANGUAGES, "current_locale": g.get("_lang") or select_locale()}
