"""Company isolation over every endpoint and method, generated from the OpenAPI schema (not a hand list).

A key of company A must never read, change or learn about company B's objects: every operation on a
B object is a 404 and leaves it as it was; lists and filters never show B's rows. Revoked and expired
keys get 401 on every operation.
"""
import datetime as dt
import json
import re

import pytest
from django.utils import timezone
from drf_spectacular.generators import SchemaGenerator

from billing.models import UsageEvent
from bots.models import Bot, Conversation, Message
from bots.lifecycle import bot_connect
from rag.models import Collection, Document, GoldenQuestion, KnowledgeBaseVersion, Source, SyncRun
from rag.services import document_add_text
from saas_bot.api.models import ApiKey

pytestmark = pytest.mark.django_db

B_TOKEN = "7100000002:AAFbetaTokenForTheEmulatorOnly00000002"
MARK = "beta-secret"


def operations() -> list[tuple[str, str]]:
    """(method, path) of every operation in the schema drf-spectacular generates from the URL conf."""
    schema = SchemaGenerator().get_schema(request=None, public=True)
    found = [(method.upper(), path) for path, item in schema["paths"].items() for method in item]
    assert len(found) >= 20, found  # a broken generator must not make the matrix pass vacuously
    return found


BODIES = {"POST": {"question": "What is the refund policy?", "token": B_TOKEN, "title": "x", "text": "y"},
          "PATCH": {"name": "renamed by A", "status": "disabled"}}


@pytest.fixture
def beta(make_company, telegram):
    """Company B with one of each object, every text carrying MARK."""
    company = make_company("beta", max_messages_per_period=100)
    telegram.add_bot(B_TOKEN, id=7100000002, username="beta_secret_bot", first_name=MARK)
    bot = bot_connect(company=company, token=B_TOKEN, name=f"{MARK} bot", register_webhook=False)
    collection = Collection.objects.create(company=company, name=f"{MARK} collection")
    document, _ = document_add_text(company=company, title=f"{MARK} doc", text=f"# {MARK}\nPrivate notes.",
                                    collection=collection)
    conversation = Conversation.objects.create(company=company, bot=bot, channel="api")
    message = Message.objects.create(company=company, bot=bot, conversation=conversation,
                                     question=f"{MARK} question", answer=f"{MARK} answer")
    UsageEvent.objects.create(company=company, bot=bot, idempotency_key=f"{MARK}:1", channel=MARK,
                              period_start=timezone.now(), model=MARK)
    source = Source.objects.create(company=company, name=f"{MARK} source", url=f"https://{MARK}.example/")
    run = SyncRun.objects.create(company=company, source=source, error=MARK,
                                 failures=[{"url": f"https://{MARK}.example/x", "code": "c", "message": MARK}])
    golden = GoldenQuestion.objects.create(company=company, question=f"{MARK} golden?", must_refuse=True)
    version = KnowledgeBaseVersion.objects.get(company=company)  # made by the document's upload
    return {"company": company, "bots": bot, "documents": document, "conversations": conversation,
            "messages": message, "collection": collection, "collections": collection, "sources": source,
            "sync-runs": run, "source": source, "versions": version, "golden-questions": golden}


def _snapshot(beta) -> str:
    rows = [Bot.objects.filter(company=beta["company"]).values(), Document.objects.filter(company=beta["company"])
            .values(), Conversation.objects.filter(company=beta["company"]).values(),
            Message.objects.filter(company=beta["company"]).values(), Collection.objects.filter(
                company=beta["company"]).values(), UsageEvent.objects.filter(company=beta["company"]).values(),
            Source.objects.filter(company=beta["company"]).values(),
            SyncRun.objects.filter(company=beta["company"]).values(),
            KnowledgeBaseVersion.objects.filter(company=beta["company"]).values(),
            GoldenQuestion.objects.filter(company=beta["company"]).values()]
    return json.dumps([sorted(map(str, r)) for r in rows])


def _call(client, method, path, body=None):
    kwargs = {"format": "json"} if body is not None else {}
    return getattr(client, method.lower())(path, body, **kwargs) if body is not None else \
        getattr(client, method.lower())(path)


def test_key_of_a_never_reaches_b(company, beta, api, bot):
    before = _snapshot(beta)
    checked = 0
    for method, path in operations():
        resource = path.split("/")[3]
        if "{id}" in path:
            target = beta.get(resource)
            assert target is not None, f"no company-B object for {path}: add it to the fixture"
            url = path.replace("{id}", str(target.id))
            response = _call(api, method, url, BODIES.get(method))
            assert response.status_code == 404, (method, url, response.status_code, response.content[:300])
            assert response.json()["error"]["code"] in ("not_found", "document_not_found", "bot_not_found")
            assert MARK not in response.content.decode()
            checked += 1
        elif method == "GET":
            response = api.get(path)
            assert response.status_code == 200, (path, response.content[:300])
            assert MARK not in response.content.decode(), path
            # Filters naming B's ids find nothing either.
            for name, value in (("bot", beta["bots"].id), ("conversation", beta["conversations"].id),
                                ("collection", beta["collection"].id), ("source", beta["source"].id)):
                filtered = api.get(path, {name: value})
                assert filtered.status_code == 200 and MARK not in filtered.content.decode(), (path, name)
            checked += 1
    assert checked >= 18
    assert _snapshot(beta) == before


def test_usage_of_a_does_not_count_b(beta, api):
    limits = {row["limit"]: row["used"] for row in api.get("/api/v1/usage").json()["limits"]}
    assert limits["max_bots"] == 0 and limits["max_documents"] == 0
    assert api.get("/api/v1/usage/events").json()["count"] == 0


def test_b_ids_in_bodies_are_refused(company, beta, api, bot):
    response = api.patch(f"/api/v1/bots/{bot.id}", {"collections": [beta["collection"].id]}, format="json")
    assert response.status_code == 400 and "collections" in response.json()["error"]["detail"]
    assert not bot.collections.exists()
    response = api.post(f"/api/v1/bots/{bot.id}/ask",
                        {"question": "hello?", "conversation_id": beta["conversations"].id}, format="json")
    assert response.status_code == 404 and response.json()["error"]["code"] == "conversation_not_found"
    response = api.post("/api/v1/documents", {"title": "t", "text": "x", "collection": beta["collection"].id},
                        format="json")
    assert response.status_code == 400
    assert not Document.objects.filter(company=company).exists()


@pytest.mark.parametrize("state", ["revoked", "expired"])
def test_unusable_key_is_401_everywhere(company, make_key, key_client, bot, state):
    api_key, key = make_key(company)
    if state == "revoked":
        ApiKey.objects.filter(pk=api_key.pk).update(revoked=True)
    else:
        ApiKey.objects.filter(pk=api_key.pk).update(expiry_date=timezone.now() - dt.timedelta(minutes=1))
    client = key_client(key)
    name_before = Bot.objects.get(id=bot.id).name
    for method, path in operations():
        url = re.sub(r"\{id\}", str(bot.id), path)
        response = _call(client, method, url, BODIES.get(method))
        assert response.status_code == 401, (method, url, response.status_code)
        assert response.json()["error"]["code"] == "authentication_failed"
    assert Bot.objects.get(id=bot.id).name == name_before
