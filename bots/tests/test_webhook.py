"""The webhook view: what Telegram gets back for every kind of request."""
import json

import pytest

from bots.models import TelegramUpdate
from saas_bot.pytest_plugin import make_update

pytestmark = pytest.mark.django_db


def post(client, bot, body, *, secret=None, content_type="application/json"):
    headers = {} if secret is False else {"HTTP_X_TELEGRAM_BOT_API_SECRET_TOKEN": secret or bot.webhook_secret}
    data = body if isinstance(body, (bytes, str)) else json.dumps(body)
    return client.post(f"/telegram/webhook/{bot.public_id}/", data=data, content_type=content_type, **headers)


def test_valid_update_is_stored_and_acknowledged(client, bot, django_capture_on_commit_callbacks):
    update = make_update("How long do sharing links last?")
    with django_capture_on_commit_callbacks() as callbacks:
        response = post(client, bot, update)
    assert response.status_code == 200
    stored = TelegramUpdate.objects.get(bot=bot, update_id=update["update_id"])
    assert stored.payload == update and stored.status == "pending" and stored.company_id == bot.company_id
    assert len(callbacks) == 1  # processing is enqueued on commit, not run in the request


def test_redelivery_is_acknowledged_and_not_enqueued_again(client, bot, django_capture_on_commit_callbacks):
    update = make_update("hello")
    assert post(client, bot, update).status_code == 200
    with django_capture_on_commit_callbacks() as callbacks:
        assert post(client, bot, update).status_code == 200
    assert TelegramUpdate.objects.filter(bot=bot, update_id=update["update_id"]).count() == 1
    assert callbacks == []


def test_unknown_bot_is_404(client, bot):
    response = client.post("/telegram/webhook/no-such-bot/", data="{}", content_type="application/json",
                           HTTP_X_TELEGRAM_BOT_API_SECRET_TOKEN=bot.webhook_secret)
    assert response.status_code == 404


@pytest.mark.parametrize("secret", [False, "wrong", ""])
def test_missing_or_wrong_secret_is_403_and_nothing_stored(client, bot, secret):
    response = post(client, bot, make_update("hi"), secret=secret if secret != "" else "x" * 43)
    assert response.status_code == 403
    assert not TelegramUpdate.objects.exists()


@pytest.mark.parametrize("body", [
    b"not json", b"[1, 2]", b'"text"', b"{}", b'{"update_id": "12"}', b'{"update_id": 1.5}',
    b'{"update_id": true}', b'{"update_id": NaN}', b'{"update_id": -3}', b'{"update_id": 99999999999999999999}',
    b"\xff\xfe\x00", b"[" * 100000,
])
def test_bodies_that_are_not_updates_are_400(client, bot, body):
    response = post(client, bot, body)
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "update_invalid"
    assert not TelegramUpdate.objects.exists()


def test_over_one_mebibyte_is_413(client, bot):
    body = json.dumps({"update_id": 1, "message": {"text": "x" * (1024 * 1024)}})
    assert post(client, bot, body).status_code == 413
    assert not TelegramUpdate.objects.exists()


def test_any_shape_with_an_update_id_is_stored(client, bot):
    odd = {"update_id": 42, "some_future_kind": {"nested": [1, {"deep": None}]}, "text": "nul \u0000 byte"}
    assert post(client, bot, odd).status_code == 200
    stored = TelegramUpdate.objects.get(update_id=42)
    assert stored.payload["some_future_kind"] == odd["some_future_kind"]


def test_get_is_405_and_the_registered_url_does_not_redirect(client, bot):
    from bots.telegram import webhook_url_for

    assert client.get(f"/telegram/webhook/{bot.public_id}/").status_code == 405
    assert webhook_url_for(bot.public_id).endswith(f"/telegram/webhook/{bot.public_id}/")
    assert post(client, bot, make_update("x")).status_code == 200  # same path, no 301


def test_url_without_trailing_slash_is_served_not_redirected(client, bot):
    response = client.post(f"/telegram/webhook/{bot.public_id}", data=json.dumps(make_update("x")),
                           content_type="application/json",
                           HTTP_X_TELEGRAM_BOT_API_SECRET_TOKEN=bot.webhook_secret)
    assert response.status_code == 200
