"""Bots and ask through the API: getMe through the emulator, settings, token never shown, metering once."""
import pytest

from billing.models import UsageEvent
from bots.models import Bot, Message
from bots.answers import QUESTION_MAX_CHARS
from bots.lifecycle import bot_connect
from rag.models import Collection
from saas_bot.testing.pytest_plugin import TEST_BOT_ID, TEST_TOKEN, record_pending_usage

pytestmark = pytest.mark.django_db


def test_connect_update_webhook_delete(company, api, telegram):
    telegram.add_bot(TEST_TOKEN, id=TEST_BOT_ID, username="acme_api_bot", first_name="Acme API")
    response = api.post("/api/v1/bots", {"token": TEST_TOKEN, "welcome_text": "Hi from the API"}, format="json")
    assert response.status_code == 201, response.content
    body = response.json()
    assert TEST_TOKEN not in response.content.decode() and "token" not in body
    assert body["username"] == "acme_api_bot" and body["token_hint"].endswith(TEST_TOKEN[-4:])
    assert body["welcome_text"] == "Hi from the API"
    bot_id = body["id"]
    assert TEST_TOKEN not in api.get(f"/api/v1/bots/{bot_id}").content.decode()

    collection = Collection.objects.create(company=company, name="Billing")
    listed = api.get("/api/v1/collections").json()["results"]
    assert [(c["id"], c["name"], c["document_count"]) for c in listed] == [(collection.id, "Billing", 0)]
    response = api.patch(f"/api/v1/bots/{bot_id}", {"name": "Helpdesk", "conversation_idle_minutes": 15,
                                                    "collections": [collection.id], "status": "disabled"},
                         format="json")
    assert response.status_code == 200, response.content
    assert response.json()["status"] == "disabled" and response.json()["collections"] == [collection.id]
    bot = Bot.objects.get(id=bot_id)
    assert (bot.name, bot.conversation_idle_minutes, bot.status) == ("Helpdesk", 15, "disabled")
    assert api.patch(f"/api/v1/bots/{bot_id}", {"status": "active"}, format="json").json()["status"] == "active"

    response = api.patch(f"/api/v1/bots/{bot_id}", {"conversation_idle_minutes": -1}, format="json")
    assert response.status_code == 400 and "conversation_idle_minutes" in response.json()["error"]["detail"]

    info = api.get(f"/api/v1/bots/{bot_id}/webhook")
    assert info.status_code == 200 and set(info.json()) >= {"url", "pending_update_count", "matches"}

    assert api.delete(f"/api/v1/bots/{bot_id}").status_code == 204
    assert not Bot.objects.filter(id=bot_id).exists()


def test_bad_token_is_a_clear_400(company, api, telegram):
    response = api.post("/api/v1/bots", {"token": "not-a-token"}, format="json")
    assert response.status_code == 400 and response.json()["error"]["code"] == "bot_token_invalid"
    response = api.post("/api/v1/bots", {"token": "7199999999:AAFunknownTokenTheEmulatorRejects000"},
                        format="json")
    assert response.status_code == 400 and response.json()["error"]["code"] == "bot_token_invalid"
    assert not Bot.objects.exists()


def test_replace_token_of_another_bot_is_refused(company, api, bot, telegram):
    other = "7100000009:AAFanotherBotTokenForTheEmulator000009"
    telegram.add_bot(other, id=7100000009, username="other_bot")
    response = api.patch(f"/api/v1/bots/{bot.id}", {"token": other}, format="json")
    assert response.status_code == 400 and response.json()["error"]["code"] == "bot_token_other_bot"


def test_ask_answers_with_sources_and_meters_once_per_idempotency_key(api, bot, demo_kb):
    headers = {"Idempotency-Key": "ask-1"}
    body = {"question": "how long do sharing links stay valid by default?"}
    first = api.post(f"/api/v1/bots/{bot.id}/ask", body, format="json", headers=headers)
    assert first.status_code == 200, first.content
    answer = first.json()
    assert answer["status"] == "answered" and "30 days" in answer["answer"]
    assert answer["sources"] and answer["usage"] == {"prompt_tokens": 0, "completion_tokens": 0, "total_tokens": 0}
    second = api.post(f"/api/v1/bots/{bot.id}/ask", body, format="json", headers=headers)
    assert second.json() == answer and second["Idempotent-Replayed"] == "true"
    record_pending_usage()
    assert Message.objects.count() == 1
    assert UsageEvent.objects.filter(kind="message", channel="api").count() == 1
    event = UsageEvent.objects.get(kind="message")
    assert event.idempotency_key == f"api:{bot.company_id}:ask-1"

    other = api.post(f"/api/v1/bots/{bot.id}/ask", {"question": "something else?"}, format="json", headers=headers)
    assert other.status_code == 422 and other.json()["error"]["code"] == "idempotency_key_reused"

    follow_up = api.post(f"/api/v1/bots/{bot.id}/ask", {"question": "and can I change that?",
                                                       "conversation_id": answer["conversation_id"]}, format="json")
    assert follow_up.status_code == 200 and follow_up.json()["conversation_id"] == answer["conversation_id"]
    messages = api.get("/api/v1/messages", {"conversation": answer["conversation_id"]}).json()
    assert messages["count"] == 2
    conversations = api.get("/api/v1/conversations", {"channel": "api", "bot": bot.id}).json()
    assert conversations["count"] == 1 and conversations["results"][0]["message_count"] == 2
    record_pending_usage()
    events = api.get("/api/v1/usage/events", {"kind": "message"}).json()
    assert events["count"] == 2
    daily = api.get("/api/v1/usage/daily").json()
    assert sum(day["messages"] for day in daily) == 2


def test_ask_with_the_chat_model_reports_token_usage(api, bot, demo_kb, llm):
    response = api.post(f"/api/v1/bots/{bot.id}/ask", {"question": "how do I turn on two-factor authentication?"},
                        format="json")
    assert response.status_code == 200, response.content
    usage = response.json()["usage"]
    assert usage["prompt_tokens"] > 0 and usage["completion_tokens"] > 0
    assert usage["total_tokens"] == usage["prompt_tokens"] + usage["completion_tokens"]


@pytest.mark.parametrize("question, code", [("", "question_empty"), ("   \n", "question_empty"),
                                            ("  \u200b  ", "question_empty"), ("?!…", "question_empty"),
                                            ("x" * (QUESTION_MAX_CHARS + 1), "question_too_long")])
def test_bad_questions_are_400_and_not_metered(api, bot, question, code):
    response = api.post(f"/api/v1/bots/{bot.id}/ask", {"question": question}, format="json")
    assert response.status_code == 400 and response.json()["error"]["code"] == code
    assert not Message.objects.exists()


def test_message_limit_is_429_quota_messages_and_not_counted(make_company, make_key, key_client, telegram):
    small = make_company("small", max_messages_per_period=1)
    telegram.add_bot(TEST_TOKEN, id=TEST_BOT_ID, username="small_bot")
    bot = bot_connect(company=small, token=TEST_TOKEN, register_webhook=False)
    client = key_client(make_key(small)[1])
    assert client.post(f"/api/v1/bots/{bot.id}/ask", {"question": "hello there?"}, format="json").status_code == 200
    response = client.post(f"/api/v1/bots/{bot.id}/ask", {"question": "and again?"}, format="json")
    assert response.status_code == 429
    error = response.json()["error"]
    assert error["code"] == "quota_messages" and error["detail"]["limit_message"]
    assert "Retry-After" not in response  # a plan limit, not throttling: retrying soon will not help
    record_pending_usage()
    assert UsageEvent.objects.filter(kind="message").count() == 1
    assert client.get("/api/v1/subscription").json()["limits"]["max_messages_per_period"] == 1


def test_a_disabled_bot_answers_nobody_and_nothing_is_metered(api, bot, demo_kb):
    assert api.patch(f"/api/v1/bots/{bot.id}", {"status": "disabled"}, format="json").status_code == 200
    response = api.post(f"/api/v1/bots/{bot.id}/ask", {"question": "what are your support hours?"}, format="json")
    assert response.status_code == 400 and response.json()["error"]["code"] == "bot_not_active"
    assert not Message.objects.exists()


def test_hostile_bodies_and_unknown_urls_get_json_errors(bot, make_key):
    from rest_framework.test import APIClient

    _, key = make_key(bot.company)
    client = APIClient(enforce_csrf_checks=True)  # as a real client: Django's CSRF check is on
    client.credentials(HTTP_AUTHORIZATION=f"Api-Key {key}")
    deep = '{"question": ' + "[" * 5000 + "]" * 5000 + "}"
    response = client.post(f"/api/v1/bots/{bot.id}/ask", deep, content_type="application/json")
    assert response.status_code == 400 and response.json()["error"]["code"] == "parse_error"
    for method in ("post", "put", "patch", "delete"):
        response = getattr(client, method)(f"/api/v1/bots/{bot.id}/", {}, format="json")  # a trailing slash
        assert response.status_code == 404 and response.json()["error"]["code"] == "not_found", method
