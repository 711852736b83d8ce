"""The webhook view: what Telegram gets back for every kind of request."""
import json

import pytest

from bots.models import TelegramUpdate
from saas_bot.testing.pytest_plugin import make_update

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


@pytest.mark.parametrize("body, field, stored_value", [
    (b'{"update_id": 990001, "message": "\\ud800"}', "message", "\ufffd"),
    (b'{"update_id": 990001, "x": "cut \\ud83d"}', "x", "cut \ufffd"),
    (b'{"update_id": 990001, "x": "\\udc00\\ud800 pair reversed"}', "x", "\ufffd\ufffd pair reversed"),
    (b'{"update_id": 990001, "x": "kept \\ud83d\\ude00 and \\\\ud800"}', "x", "kept \U0001F600 and \\ud800"),
    (b'{"update_id": 990001, "\\ud800": 1}', "\ufffd", 1),
    (b'{"update_id": 990001, "x": 1e999}', "x", "1e999"),
    (b'{"update_id": 990001, "x": ' + b"9" * 5000 + b"}", "x", "9" * 5000),
])
def test_valid_json_that_jsonb_refuses_is_stored_not_a_500(client, bot, body, field, stored_value):
    """Lone UTF-16 surrogates (a text cut inside an emoji) and numbers PostgreSQL or Python cannot hold
    failed the INSERT with a 500, which Telegram resends for a day."""
    response = post(client, bot, body)
    assert response.status_code == 200, response.content
    assert TelegramUpdate.objects.get(update_id=990001).payload[field] == stored_value


def test_an_unusable_stored_update_is_marked_failed_with_a_reason(client, bot, django_capture_on_commit_callbacks):
    from bots.inbox import update_process

    assert post(client, bot, b'{"update_id": 990002, "message": "\\ud800"}').status_code == 200
    stored = TelegramUpdate.objects.get(update_id=990002)
    assert update_process(update_pk=stored.pk) == "failed"
    stored.refresh_from_db()
    assert stored.status == "failed" and stored.error.startswith("could not parse update")


def test_my_chat_member_without_chat_is_ignored_not_an_error(client, bot):
    from bots.inbox import update_process

    body = {"update_id": 990003, "my_chat_member": {
        "from": {"id": 1, "is_bot": False, "first_name": "A"}, "date": 1767225600,
        "old_chat_member": {"status": "member", "user": {"id": 9, "is_bot": True, "first_name": "B"}},
        "new_chat_member": {"status": "kicked", "until_date": 0,
                            "user": {"id": 9, "is_bot": True, "first_name": "B"}}}}
    assert post(client, bot, body).status_code == 200
    stored = TelegramUpdate.objects.get(update_id=990003)
    assert update_process(update_pk=stored.pk) in ("ignored", "failed")
    stored.refresh_from_db()
    assert "AttributeError" not in stored.error



def test_fuzzed_update_bodies_never_get_a_5xx(client, bot):
    """Hypothesis: JSON values with lone surrogates, NUL, huge numbers and deep nesting under an integer
    update_id. ``bench/hostile_probe.py`` sends the same strategy 10,000 times and more."""
    from hypothesis import HealthCheck, given
    from hypothesis import settings as hypothesis_settings

    from saas_bot.tests.hostile_inputs import update_bodies

    statuses = []

    @given(body=update_bodies())
    @hypothesis_settings(max_examples=150, deadline=None, derandomize=True, database=None,
                         suppress_health_check=list(HealthCheck))
    def run(body):
        statuses.append(post(client, bot, body).status_code)

    run()
    assert statuses and max(statuses) < 500
    assert statuses.count(200) > len(statuses) // 2  # most bodies are updates and were stored
