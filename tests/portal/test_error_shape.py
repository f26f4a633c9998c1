"""Every API error has the one shape; HTML errors leak nothing."""

from __future__ import annotations

import pytest

SHAPE = {"ok", "status", "error", "errors"}


@pytest.mark.parametrize(
    ("path", "status"),
    [
        ("/api/v1/datasets/tidak-ada", 404),
        ("/api/v1/nothing-here", 404),
        ("/api/v1/datasets?page=abc", 400),
        ("/api/v1/datasets?page_size=100000", 400),
        ("/api/v1/datasets?page=0", 400),
    ],
)
def test_api_errors_have_one_shape(client, path, status):
    response = client.get(path)
    assert response.status_code == status
    body = response.get_json()
    assert set(body) == SHAPE
    assert body["ok"] is False and body["status"] == status
    assert body["errors"] and all({"code", "message"} <= set(e) for e in body["errors"])


def test_method_not_allowed_is_shaped(client):
    response = client.post("/api/v1/datasets")
    assert response.status_code == 405
    assert set(response.get_json()) == SHAPE


def test_field_errors_name_the_field(client):
    body = client.get("/api/v1/datasets?page_size=x").get_json()
    assert body["errors"][0]["field"] == "page_size"


def test_html_404_is_a_page(client):
    response = client.get("/dataset/tidak-ada")
    assert response.status_code == 404
    assert response.mimetype == "text/html"
    assert b"Traceback" not in response.data


def test_unexpected_error_is_generic(app):
    @app.get("/api/v1/boom")
    def boom():  # type: ignore[no-untyped-def]
        raise RuntimeError("secret detail: postgresql://user:pw@db")

    app.config["PROPAGATE_EXCEPTIONS"] = False
    response = app.test_client().get("/api/v1/boom")
    assert response.status_code == 500
    assert set(response.get_json()) == SHAPE
    assert b"secret detail" not in response.data
