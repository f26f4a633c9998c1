"""The one-data portal.

``create_app(config)`` wires config → db → storage → i18n → views → errors.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from flask import Flask

from portal import config as settings


def create_app(config: dict[str, Any] | None = None) -> Flask:
    """Build the Flask application.

    :param config: overrides applied after the ``ONEDATA_*`` environment (tests pass a dict).
    :raises RuntimeError: when the secret key is missing or a placeholder outside testing.
    """
    overrides = dict(config or {})
    env = settings.load_settings()
    instance = overrides.get("INSTANCE_PATH") or env.get("INSTANCE_PATH") or _default_instance()
    app = Flask(
        __name__, instance_path=str(Path(instance).resolve()), instance_relative_config=True
    )
    app.config.update(env)
    app.config.update(overrides)
    app.config["INSTANCE_PATH"] = app.instance_path
    settings.finalize(app.config, Path(app.instance_path))
    app.config["MAX_CONTENT_LENGTH"] = 16 * 1024 * 1024
    app.json.sort_keys = False  # type: ignore[attr-defined]

    from portal import db, errors, headers, i18n, identity, markup, oauth, storage
    from portal.views import (
        access_requests,
        account_tokens,
        admin,
        api,
        auth,
        catalog,
        harvest,
        harvest_sources,
        oidc,
        security_log,
    )

    db.init_app(app)
    storage.init_app(app)
    i18n.init_app(app)
    markup.init_app(app)
    identity.init_app(app)
    headers.init_app(app)
    auth.init_app(app)  # CSRF on every form; sign-in, registration, account pages
    oauth.init_app(app)  # OAuth 2 provider: /oauth/*, bearer tokens on every endpoint
    oidc.init_app(app)  # optional sign-in through the city's identity provider
    app.register_blueprint(catalog.bp)
    app.register_blueprint(api.bp)
    app.register_blueprint(harvest.bp)
    app.register_blueprint(harvest_sources.bp)
    app.register_blueprint(account_tokens.bp)
    app.register_blueprint(access_requests.bp)
    app.register_blueprint(admin.bp)
    security_log.init_app(app)  # /admin/security-log; syslog forwarding and alert rules
    errors.register(app)
    return app


def _default_instance() -> str:
    return os.path.join(os.getcwd(), "instance")
