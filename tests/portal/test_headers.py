from __future__ import annotations


def test_security_headers_on_pages_and_api(client):
    for path in ("/", "/api/v1/datasets", "/tidak-ada"):
        headers = client.get(path).headers
        csp = headers["Content-Security-Policy"]
        assert "script-src 'self'" in csp and "'unsafe-inline'" not in csp
        assert "frame-ancestors 'none'" in csp
        assert headers["X-Content-Type-Options"] == "nosniff"
        assert headers["Referrer-Policy"] == "strict-origin-when-cross-origin"
        assert "Strict-Transport-Security" not in headers


def test_hsts_and_secure_cookies_in_production(app_factory):
    app = app_factory(PRODUCTION=True)
    response = app.test_client().get("/?lang=en")
    assert response.headers["Strict-Transport-Security"].startswith("max-age=")
    assert "Secure" in response.headers["Set-Cookie"]


def test_proxy_fix_uses_the_declared_hops_only(app_factory):
    from flask import request

    app = app_factory(PROXY_HOPS=1)

    @app.get("/_ip")
    def ip() -> str:  # type: ignore[no-untyped-def]
        return request.remote_addr or ""

    client = app.test_client()
    forged = client.get("/_ip", headers={"X-Forwarded-For": "6.6.6.6, 203.0.113.9"})
    assert forged.get_data(as_text=True) == "203.0.113.9"  # the proxy's view, not the forgery
    plain = app_factory().test_client()
    assert plain.get("/", headers={"X-Forwarded-For": "6.6.6.6"}).status_code == 200


def test_templates_have_no_inline_scripts_or_styles():
    import re
    from pathlib import Path

    root = Path(__file__).resolve().parents[2] / "portal" / "templates"
    for path in root.rglob("*.html"):
        text = path.read_text(encoding="utf-8")
        assert not re.search(r"<script(?![^>]*\bsrc=)[^>]*>", text), path
        assert "<style" not in text and " style=" not in text and " onclick=" not in text, path
