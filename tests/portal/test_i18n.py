from __future__ import annotations


def test_bahasa_indonesia_is_the_default(client):
    page = client.get("/")
    assert page.status_code == 200
    assert 'lang="id"' in page.get_data(as_text=True)
    assert "Kumpulan Data" in page.get_data(as_text=True)


def test_english_on_request_and_remembered(client):
    page = client.get("/?lang=en")
    assert 'lang="en"' in page.get_data(as_text=True)
    assert "Datasets" in page.get_data(as_text=True)
    again = client.get("/dataset")
    assert 'lang="en"' in again.get_data(as_text=True)


def test_unknown_language_falls_back(client):
    assert 'lang="id"' in client.get("/?lang=xx").get_data(as_text=True)


def test_stored_indonesian_codes_are_shown_in_the_pages_language(app):
    """Update frequencies are stored by their Satu Data names (``harian``); an English page
    says "daily", an Indonesian one "harian"."""
    from flask import render_template_string

    template = "{{ frequency_label('harian') }} {{ frequency_label(None) }}|"
    with app.test_request_context("/?lang=en"):
        assert render_template_string(template) == "daily |"
    with app.test_request_context("/"):
        assert render_template_string(template) == "harian |"
