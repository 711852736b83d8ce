"""``/`` leads to the admin, the API docs and ``/healthz``; ``/healthz`` reports database, broker and model."""
import pytest

pytestmark = pytest.mark.django_db


def test_landing_page_links_to_admin_api_docs_and_health(client):
    response = client.get("/")
    page = response.content.decode()
    assert response.status_code == 200
    for href in ('href="/admin/"', 'href="/api/docs/"', 'href="/healthz"'):
        assert href in page
    assert "Sign in to the admin" in page
    assert client.get("/admin/login/").status_code == 200


def test_view_site_link_of_the_admin_is_the_landing_page(owner_client):
    assert 'href="/">View site' in owner_client.get("/admin/").content.decode()
    assert "Go to the admin" in owner_client.get("/").content.decode()


def test_healthz_reports_database_broker_and_model(client, settings):
    settings.CELERY_BROKER_URL = ""
    body = client.get("/healthz").json()
    assert body["status"] == "ok" and body["database"] == "ok"
    assert body["broker"].startswith("none") and body["model"] in {"loaded", "not_loaded"}


def test_healthz_is_503_when_the_broker_does_not_answer(client, settings):
    settings.CELERY_BROKER_URL = "redis://127.0.0.1:1/0"  # nothing listens on port 1
    response = client.get("/healthz")
    assert response.status_code == 503
    body = response.json()
    assert body["status"] == "error" and body["database"] == "ok" and body["broker"].startswith("error")
    assert "127.0.0.1" not in response.content.decode()  # an unauthenticated page shows no addresses


def test_healthz_says_loaded_after_the_warm_up(client, settings):
    from rag.embeddings import embeddings_warm_up

    settings.CELERY_BROKER_URL = ""
    embeddings_warm_up()
    assert client.get("/healthz").json()["model"] == "loaded"


def test_make_run_prints_urls_a_browser_can_open():
    from saas_bot.gunicorn_conf import site_urls

    assert site_urls("0.0.0.0:8000") == [("Home", "http://127.0.0.1:8000/"), ("Admin", "http://127.0.0.1:8000/admin/"),
                                         ("API docs", "http://127.0.0.1:8000/api/docs/"),
                                         ("Health", "http://127.0.0.1:8000/healthz")]
    assert site_urls("[::]:8080")[0] == ("Home", "http://127.0.0.1:8080/")
    assert site_urls("10.0.0.5:9000")[1] == ("Admin", "http://10.0.0.5:9000/admin/")


def test_make_run_says_when_it_listens_on_every_interface(capsys):
    from types import SimpleNamespace

    from saas_bot.gunicorn_conf import when_ready

    when_ready(SimpleNamespace(cfg=SimpleNamespace(bind=["0.0.0.0:8000", "unix:/tmp/x.sock"])))
    assert capsys.readouterr().err.splitlines()[0] == (
        "saas_bot is serving on every network interface (0.0.0.0:8000); from this machine:")
    when_ready(SimpleNamespace(cfg=SimpleNamespace(bind=["127.0.0.1:8001"])))
    out = capsys.readouterr().err
    assert out.startswith("saas_bot is serving on 127.0.0.1:8001:\n") and "http://127.0.0.1:8001/admin/" in out
