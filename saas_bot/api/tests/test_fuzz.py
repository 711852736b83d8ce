"""Hypothesis over every API operation: hostile strings (lone surrogates, NUL, formula starts), huge
numbers, deep nesting, wrong types, hostile ids and headers. No request may answer 5xx.

Small here (``EXAMPLES`` per operation, derandomized); ``bench/hostile_probe.py`` runs 10,000 per operation.
"""
import urllib.parse

import pytest
from hypothesis import HealthCheck, Phase, given
from hypothesis import settings as hypothesis_settings

from bots.models import Conversation, Message
from rag.models import Collection
from rag.services import document_add_text
from saas_bot.tests.hostile_inputs import api_operations, api_requests

pytestmark = pytest.mark.django_db
EXAMPLES = 12


def test_no_api_operation_answers_5xx_to_hostile_input(company, bot, api, make_company, settings):
    settings.API_THROTTLE_RATE = None
    settings.DOCUMENT_URL_TIMEOUT_SECONDS = 1.0
    document, _ = document_add_text(company=company, title="Refunds", text="# Refunds\nRefunds take five days.")
    conversation = Conversation.objects.create(company=company, bot=bot, channel="api")
    message = Message.objects.create(company=company, bot=bot, conversation=conversation, question="q?", answer="a.")
    collection = Collection.objects.create(company=company, name="Billing")
    other = make_company("other")
    other_document, _ = document_add_text(company=other, title="Secret", text="# Secret\nB's data.")
    ids = {"bots": [str(bot.id)], "documents": [str(document.id), str(other_document.id)],
           "conversations": [str(conversation.id)], "messages": [str(message.id)],
           "collections": [str(collection.id)]}
    operations = api_operations(api.get("/api/schema/", {"format": "json"}).json())
    assert len(operations) >= 20
    server_errors = []
    # DELETEs last, so the others still find the objects.
    for operation in sorted(operations, key=lambda op: op["method"] == "DELETE"):
        @given(request=api_requests(operation, ids))
        @hypothesis_settings(max_examples=EXAMPLES, deadline=None, derandomize=True, database=None,
                             suppress_health_check=list(HealthCheck), phases=[Phase.generate])
        def run(request):
            path = request["path"] + ("?" + urllib.parse.urlencode(
                request["query"], errors="surrogatepass") if request["query"] else "")
            response = api.generic(operation["method"], path, data=request["body"],
                                   content_type=request["content_type"], **request["headers"])
            if response.status_code >= 500:
                server_errors.append((operation["method"], path[:200], request["body"][:200], response.status_code))

        run()
    assert not server_errors, server_errors[:10]
