"""The admin's playground, usage dashboard and knowledge gaps, through Django's test client."""
import pytest
from django.contrib.auth.models import User
from django.urls import reverse

from billing.models import UsageEvent
from bots.models import Bot, Conversation, KnowledgeGapResolution, Message
from saas_bot.testing.pytest_plugin import DEMO_DIR, record_pending_usage
from tenants.models import Membership

pytestmark = pytest.mark.django_db


def member(client, company, role="admin", username=None):
    user = User.objects.create_user(username or f"{company.slug}-{role}", password="pw", is_staff=True)
    Membership.objects.create(user=user, company=company, role=role)
    client.force_login(user)
    return user


def staff(client):
    user = User.objects.create_superuser("root", password="pw")
    client.force_login(user)
    return user


def _kb(company, name="sharing-links.md"):
    from rag.services import document_add, documents_ingest

    document, _ = document_add(company=company, file_name=name, data=(DEMO_DIR / "kb" / name).read_bytes(),
                               schedule=False)
    documents_ingest(company=company, documents=[document])


def _messages(response):
    return [str(m) for m in response.context["messages"]] if response.context else []


def test_pages_require_an_admin_login(client, bot):
    for url in (reverse("admin-playground", kwargs={"bot_id": bot.id}), reverse("admin-usage"),
                reverse("admin-knowledge-gaps"), reverse("admin-playground-index")):
        response = client.get(url)
        assert response.status_code == 302 and "/admin/login/" in response["Location"]


def test_playground_answers_with_sources_and_keeps_the_conversation(client, bot):
    _kb(bot.company)
    member(client, bot.company)
    url = reverse("admin-playground", kwargs={"bot_id": bot.id})
    assert client.get(url).status_code == 200

    response = client.post(url, {"question": "how long do sharing links stay valid by default?"}, follow=True)
    assert response.status_code == 200
    [turn] = response.context["turns"]
    assert turn.status == "answered" and "30 days" in turn.answer
    page = response.content.decode()
    assert turn.sources[0]["document"] == "sharing-links.md"
    assert f'class="playground-source">{turn.sources[0]["title"]}' in page
    client.post(url, {"question": "and can I change that?"})
    conversation = Conversation.objects.get()
    assert conversation.channel == "playground" and conversation.messages.count() == 2  # one memory
    record_pending_usage()
    assert set(UsageEvent.objects.filter(kind="message").values_list("channel", flat=True)) == {"playground"}

    response = client.post(url, {"action": "new"}, follow=True)
    assert response.context["turns"] == [] and Conversation.objects.get().ended_at is not None
    client.post(url, {"question": "how long do sharing links stay valid?"})
    assert Conversation.objects.count() == 2


@pytest.mark.parametrize("question,text", [("   ", "The question is empty (no letters or digits)."),
                                           ("x" * 4097, "Questions are limited to 4096 characters.")])
def test_playground_bad_questions_are_messages(client, bot, question, text):
    member(client, bot.company)
    response = client.post(reverse("admin-playground", kwargs={"bot_id": bot.id}), {"question": question})
    assert response.status_code == 200 and text in _messages(response)
    assert not Message.objects.exists()


def test_playground_limit_reached_is_a_warning(client, make_company, telegram):
    from bots.lifecycle import bot_connect

    company = make_company("tiny", max_messages_per_period=0)
    telegram.add_bot("7300000001:AAFplaygroundLimit000000000000000001", username="tiny_bot")
    bot = bot_connect(company=company, token="7300000001:AAFplaygroundLimit000000000000000001",
                      register_webhook=False)
    member(client, company)
    response = client.post(reverse("admin-playground", kwargs={"bot_id": bot.id}), {"question": "hello?"},
                           follow=True)
    assert response.status_code == 200
    assert any("limit is reached" in m for m in _messages(response))
    assert Message.objects.get().status == "limit_reached"


def test_another_companys_bot_is_404_and_viewers_cannot_ask(client, bot, make_company):
    other = make_company("globex")
    foreign = Bot.objects.create(company=other, name="g", username="globex_bot", token_encrypted="x")
    member(client, bot.company, role="viewer")
    assert client.get(reverse("admin-playground", kwargs={"bot_id": foreign.id})).status_code == 404
    assert client.post(reverse("admin-playground", kwargs={"bot_id": foreign.id}), {"question": "hi"}).status_code == 404
    url = reverse("admin-playground", kwargs={"bot_id": bot.id})
    response = client.get(url)
    assert response.status_code == 200 and 'id="playground-form"' not in response.content.decode()
    assert client.post(url, {"question": "hi"}).status_code == 403
    assert not Message.objects.exists()
    assert client.get(reverse("admin-usage")).status_code == 200
    assert client.get(reverse("admin-knowledge-gaps")).status_code == 200
    assert client.get(reverse("admin-usage-export")).status_code == 403


def test_usage_dashboard_shows_limits_and_charts(client, bot):
    member(client, bot.company)
    response = client.get(reverse("admin-usage"))
    page = response.content.decode()
    assert response.status_code == 200
    assert 'id="usage-messages-chart"' in page and 'id="usage-tokens-chart"' in page
    assert reverse("admin-plotly-js") in page and "cdn" not in page.lower()
    limits = {row["limit"]: row for row in response.context["current"]["limits"]}
    assert limits["max_messages_per_period"]["maximum"] == 1000 and limits["max_bots"]["used"] == 1
    assert response.context["all_companies"] is None  # members see only their company
    js = client.get(reverse("admin-plotly-js"))
    assert js.status_code == 200 and js["Content-Type"] == "application/javascript"
    assert b"plotly" in b"".join(js.streaming_content if js.streaming else [js.content])[:2000].lower()


def test_staff_see_every_company_and_export_csv(client, bot, make_company):
    make_company("globex", max_messages_per_period=5)
    staff(client)
    response = client.get(reverse("admin-usage"))
    assert [row["company"].slug for row in response.context["all_companies"]] == ["acme", "globex"]
    globex = response.context["all_companies"][1]["company"]
    response = client.get(reverse("admin-usage"), {"company": globex.pk})
    assert response.context["company"] == globex
    csv = client.get(reverse("admin-usage-export")).content.decode().splitlines()
    assert csv[0].startswith("company,slug,plan,status") and len(csv) == 3
    assert "globex" in csv[2] and ",5," in csv[2]
    daily = client.get(reverse("admin-usage-export"), {"company": bot.company.pk}).content.decode().splitlines()
    assert daily[0] == "day,bot,messages,tokens" and "@acme_test_bot" in daily[1]
    # A non-ASCII digit ("¹".isdigit() is True, int("¹") raises) is "not found", not a 500.
    assert client.get(reverse("admin-usage-export"), {"company": "¹"}).status_code == 404


def test_knowledge_gaps_answer_once(client, bot, make_company):
    conversation = Conversation.objects.create(company=bot.company, bot=bot)
    gaps = [Message.objects.create(company=bot.company, bot=bot, conversation=conversation, question=q,
                                   status="not_found") for q in ("do you have an android app",
                                                                 "Is there an app for Android phones?")]
    other = make_company("globex")
    other_bot = Bot.objects.create(company=other, name="g", username="globex_bot", token_encrypted="x")
    foreign = Message.objects.create(company=other, bot=other_bot, question="do you have an android app",
                                     conversation=Conversation.objects.create(company=other, bot=other_bot),
                                     status="not_found")
    viewer = member(client, bot.company, role="viewer")
    response = client.get(reverse("admin-knowledge-gaps"))
    [group] = response.context["groups"]
    assert group.count == 2 and foreign.id not in group.message_ids
    assert 'class="gap-answer"' not in response.content.decode()
    form = {"message_ids": ",".join(map(str, group.message_ids)), "question": group.question,
            "answer": "Yes: search for us on Google Play."}
    assert client.post(reverse("admin-knowledge-gaps"), form).status_code == 403
    client.logout()
    Membership.objects.filter(user=viewer).update(role="admin")
    client.force_login(viewer)

    response = client.post(reverse("admin-knowledge-gaps"), {**form, "message_ids": f"{form['message_ids']},{foreign.id}"},
                           follow=True)
    assert any("Q&A document" in m for m in _messages(response))
    resolution = KnowledgeGapResolution.objects.get()
    assert set(resolution.messages.values_list("id", flat=True)) == {m.id for m in gaps}  # never the foreign one
    assert resolution.document.company == bot.company and resolution.created_by == viewer
    assert response.context["groups"] == []
    response = client.post(reverse("admin-knowledge-gaps"), {**form, "answer": ""}, follow=True)
    assert "Write the answer." in _messages(response)


def test_playground_provider_outage_and_no_subscription_are_messages(client, bot, llm):
    from billing.models import Subscription

    _kb(bot.company)
    member(client, bot.company)
    url = reverse("admin-playground", kwargs={"bot_id": bot.id})
    llm.fail_next(status=500, times=10)
    response = client.post(url, {"question": "how long do sharing links stay valid by default?"})
    assert response.status_code == 200
    assert any("fail" in m.lower() or "unavailable" in m.lower() for m in _messages(response)), _messages(response)
    assert 'how long do sharing links stay valid by default?</textarea>' in response.content.decode()  # kept

    Subscription.objects.filter(company=bot.company).update(status=Subscription.Status.CANCELED)
    response = client.post(url, {"question": "how long do sharing links stay valid by default?"}, follow=True)
    assert response.status_code == 200
    assert any("no live subscription" in m for m in _messages(response))
