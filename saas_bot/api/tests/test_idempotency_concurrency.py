"""Two simultaneous requests with one Idempotency-Key against a live server: the work runs once."""
import threading

import httpx

from rag.models import Document
from saas_bot.api.models import ApiKey


def test_concurrent_duplicates_do_not_both_run(live_server, transactional_db, make_company):
    company = make_company("acme")
    _, key = ApiKey.objects.create_key(name="k", company=company)
    headers = {"Authorization": f"Api-Key {key}", "Idempotency-Key": "same-key"}
    barrier, responses = threading.Barrier(4), []

    def post():
        barrier.wait()
        responses.append(httpx.post(f"{live_server.url}/api/v1/documents", headers=headers, timeout=120,
                                    json={"title": "Refunds", "text": "# Refunds\nRefunds take five days."}))

    threads = [threading.Thread(target=post) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    statuses = sorted(r.status_code for r in responses)
    assert statuses.count(201) >= 1 and set(statuses) <= {201, 409}, statuses
    created = [r for r in responses if r.status_code == 201]
    assert sum(r.headers.get("Idempotent-Replayed") != "true" for r in created) == 1
    for response in responses:
        if response.status_code == 409:
            assert response.json()["error"]["code"] == "idempotency_key_in_progress"
    assert Document.objects.filter(company=company).count() == 1
