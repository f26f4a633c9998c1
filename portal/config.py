"""Settings: safe defaults, overridden by ``ONEDATA_*`` environment variables (one line per key)."""

from __future__ import annotations

import os
import secrets
from pathlib import Path
from typing import Any

PLACEHOLDER_SECRETS = frozenset({"", "change-me", "changeme", "secret", "dev", "development"})

#: Every setting the portal reads from the environment: key → (default, description).
#: README.md documents each key; ``tests/test_docs.py`` keeps the two in step.
SETTINGS: dict[str, tuple[Any, str]] = {
    "SECRET_KEY": (None, "Secret used to sign sessions and tokens. Required outside testing."),
    "DATABASE_URL": (
        None,
        "SQLAlchemy URL of the metadata database (default: SQLite in the instance folder).",
    ),
    "INSTANCE_PATH": (
        None,
        "Folder for the embedded database, stored files and generated secrets.",
    ),
    "STORAGE_URL": (
        None,
        "Where version files live: a folder path or file:// URL (default: <instance>/storage).",
    ),
    "REDIS_URL": (None, "Redis for the harvest queue (RQ) and shared login throttling (optional)."),
    "DATASETS_PATH": (
        None,
        "Folder of sample OPD sources that `onedata demo` harvests (default: ./datasets).",
    ),
    "SCHEMAS_PATH": (None, "Folder of Table Schemas (default: ./schemas)."),
    "BASE_URL": (None, "Public address of the portal, used in e-mailed links."),
    "DEFAULT_LOCALE": (
        "id",
        "Language of the public pages when the visitor has not chosen one (id or en).",
    ),
    "MAX_FILE_SIZE": (200 * 1024 * 1024, "Largest file, in bytes, a harvester may store."),
    "PREVIEW_ROWS": (20, "Rows shown in a dataset page's preview."),
    "PAGE_SIZE": (20, "Datasets per catalog or API page."),
    "PRODUCTION": (False, "Set to 1 in production: secure cookies and HSTS."),
    "PROXY_HOPS": (0, "Reverse proxies in front of the app whose X-Forwarded-* headers to trust."),
    "SMTP_URL": (
        None,
        "Outgoing mail server, smtp[s]://user:password@host:port (default: .eml files in "
        "<instance>/outbox).",
    ),
    "MAIL_FROM": (
        "Satu Data Kota Pontianak <noreply@localhost>",
        "Sender address of the portal's e-mails (password resets).",
    ),
    "LOG_HMAC_KEY": (
        None,
        "Key (at least 32 characters) that signs security-log checkpoints; set it only for the"
        " `onedata security` commands, never for the web server, and never equal to SECRET_KEY.",
    ),
    "LOG_RETENTION_DAYS": (
        365,
        "Days security-log records stay online; `onedata security archive` moves older ones to a"
        " gzip JSON Lines file.",
    ),
    "SYSLOG_URL": (
        None,
        "Forward every security-log record to a syslog server, udp://host:514 or tcp://host:601"
        " (RFC 5424); unset: no forwarding.",
    ),
    "ALERT_LOGIN_FAILURES": (
        10,
        "Failed logins for one account or from one address that raise a security alert.",
    ),
    "ALERT_WINDOW_MINUTES": (
        15,
        "Window of the failed-login alert, and the least time between two alerts of one rule"
        " about one subject.",
    ),
    "HARVEST_ALLOW_HOSTS": (
        "",
        "Comma-separated hosts a harvester may reach even on private or loopback addresses.",
    ),
    "HARVEST_CONCURRENCY": (
        4,
        "Sources checked and published at the same time (the CPU- and database-bound work).",
    ),
    "HARVEST_FETCH_CONCURRENCY": (
        32,
        "Sources that may wait on the network at the same time, so unreachable sources cost one"
        " timeout in all, not one each.",
    ),
    "HARVEST_CONNECT_TIMEOUT": (10, "Seconds a harvester waits to connect to a source."),
    "HARVEST_READ_TIMEOUT": (30, "Seconds a harvester waits for any single read from a source."),
    "HARVEST_TOTAL_TIMEOUT": (
        300,
        "Seconds one download (redirects and the whole body) may take.",
    ),
    "HARVEST_QUEUE": ("onedata-harvest", "Name of the RQ queue harvest jobs go to."),
    "HARVEST_JOB_DEADLINE": (3600, "Seconds after which a harvest job stops taking new items."),
    "HARVEST_HEARTBEAT_TIMEOUT": (
        300,
        "Seconds without a heartbeat after which a running job is marked failed.",
    ),
    "HARVEST_WITHDRAW_GRACE_DAYS": (
        7,
        "Days a dataset may be missing from its source before it is withdrawn.",
    ),
    "OAUTH_ACCESS_TOKEN_LIFETIME": (3600, "Seconds an OAuth 2 access token stays valid."),
    "OAUTH_REFRESH_TOKEN_LIFETIME": (
        30 * 24 * 3600,
        "Seconds an OAuth 2 refresh token stays valid (each refresh issues a new one).",
    ),
    "OIDC_ISSUER": (
        None,
        "Issuer URL of the city identity provider (its /.well-known/openid-configuration is "
        "read); OIDC login is off when unset.",
    ),
    "OIDC_CLIENT_ID": (None, "Client id of the portal at the city identity provider."),
    "OIDC_CLIENT_SECRET": (None, "Client secret of the portal at the city identity provider."),
    "OIDC_ROLE_CLAIM": (
        None,
        "ID token claim that makes an OIDC user a member or a producer (never steward or admin).",
    ),
}


def _coerce(default: Any, raw: str) -> Any:
    if isinstance(default, bool):
        return raw.strip().lower() in {"1", "true", "yes", "on"}
    if isinstance(default, int):
        return int(raw)
    if isinstance(default, float):
        return float(raw)
    return raw


def load_settings(environ: dict[str, str] | None = None) -> dict[str, Any]:
    """Read every known ``ONEDATA_*`` variable; unknown ones are ignored.

    :param environ: the environment to read (``os.environ`` when ``None``).
    """
    env = os.environ if environ is None else environ
    config: dict[str, Any] = {}
    for key, (default, _doc) in SETTINGS.items():
        raw = env.get(f"ONEDATA_{key}")
        config[key] = default if raw is None else _coerce(default, raw)
    return config


def finalize(config: dict[str, Any], instance_path: Path) -> None:
    """Fill path defaults and refuse a missing or placeholder secret outside testing.

    :raises RuntimeError: when ``SECRET_KEY`` is missing or a placeholder and ``TESTING`` is off.
    """
    root = Path(__file__).resolve().parent.parent
    if not config.get("DATABASE_URL"):
        config["DATABASE_URL"] = f"sqlite:///{instance_path / 'onedata.sqlite'}"
    if not config.get("STORAGE_URL"):
        config["STORAGE_URL"] = str(instance_path / "storage")
    config["DATASETS_PATH"] = str(config.get("DATASETS_PATH") or root / "datasets")
    config["SCHEMAS_PATH"] = str(config.get("SCHEMAS_PATH") or root / "schemas")
    secret = config.get("SECRET_KEY")
    if not secret:
        secret = _read_instance_secret(instance_path)
        config["SECRET_KEY"] = secret
    if (not secret or secret.strip().lower() in PLACEHOLDER_SECRETS) and not config.get("TESTING"):
        raise RuntimeError(
            "ONEDATA_SECRET_KEY is missing or a placeholder. Set it to a long random value:\n"
            "  export ONEDATA_SECRET_KEY=$(openssl rand -hex 32)\n"
            "or run `onedata init`, which writes one into the instance folder."
        )
    config["SESSION_COOKIE_HTTPONLY"] = True
    config["SESSION_COOKIE_SAMESITE"] = "Lax"
    config["SESSION_COOKIE_SECURE"] = bool(config.get("PRODUCTION"))
    config.setdefault("PERMANENT_SESSION_LIFETIME", 12 * 3600)


def _read_instance_secret(instance_path: Path) -> str | None:
    path = instance_path / "secret_key"
    if path.is_file():
        return path.read_text(encoding="utf-8").strip() or None
    return None


def write_instance_secret(instance_path: Path) -> Path:
    """Create ``<instance>/secret_key`` with a random value unless it exists (used by init/demo)."""
    instance_path.mkdir(parents=True, exist_ok=True)
    path = instance_path / "secret_key"
    if not path.exists():
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(secrets.token_hex(32))
    return path
