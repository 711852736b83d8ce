"""The path of an update and of a document through the product modules, counted (docs/architecture.md).

Run: ``.venv/bin/python -m pytest -q -s -p no:cacheprovider bench/scenarios/test_paths.py`` (bench/ is not
in the suite's testpaths). A profiler (``sys.setprofile``) records every call from one product module into
another while one update goes from the webhook to the reply (a private question answered from the demo KB,
through the real view, inbox, task and the Bot API emulator) and while one document goes from ``document_add``
through ingestion. Printed per path:

- ``function hops``: distinct cross-module calls (caller module -> callee module.function), first-seen order;
- ``module hops``: distinct (caller module, callee module) pairs;
- ``modules``: distinct product modules entered;
- ``entered from more than one module``: modules the path comes back to from different places.

Calls that start a thread (the eager task runner, the claim heartbeat) have no caller and are not counted.

Product modules are the apps' files (tenants, billing, rag, bots, saas_bot), not tests, doubles or the bench.
"""
from __future__ import annotations

import sys
from collections import OrderedDict
from pathlib import Path

import pytest
from django.test import Client

REPO = Path(__file__).resolve().parents[2]
APPS = ("tenants", "billing", "rag", "bots", "saas_bot")
DOUBLES = ("telegram_emulator", "llm_stub", "local_http", "loadgen", "pytest_plugin")


def _module_of(filename: str) -> str | None:
    try:
        rel = Path(filename).resolve().relative_to(REPO)
    except ValueError:
        return None
    parts = rel.with_suffix("").parts
    if not parts or parts[0] not in APPS or "tests" in parts or "migrations" in parts or parts[:2] == ["saas_bot", "testing"]:
        return None
    if parts[-1] in DOUBLES:
        return None
    return ".".join(p for p in parts if p != "__init__")


class PathRecorder:
    def __init__(self) -> None:
        self.hops: OrderedDict[tuple[str, str], None] = OrderedDict()
        self._cache: dict[str, str | None] = {}

    def _mod(self, frame) -> str | None:
        filename = frame.f_code.co_filename
        if filename not in self._cache:
            self._cache[filename] = _module_of(filename)
        return self._cache[filename]

    def profile(self, frame, event, arg) -> None:
        if event != "call":
            return
        callee = self._mod(frame)
        if callee is None:
            return
        caller_frame = frame.f_back
        while caller_frame is not None and self._mod(caller_frame) is None:
            caller_frame = caller_frame.f_back
        caller = self._mod(caller_frame) if caller_frame is not None else "<entry>"
        if caller != callee and not frame.f_code.co_name.startswith("<") \
                and frame.f_code.co_name != "wait_for_background_tasks":  # the test's own wait
            self.hops.setdefault((caller, f"{callee}.{frame.f_code.co_name}"), None)

    def __enter__(self):
        import threading

        sys.setprofile(self.profile)
        threading.setprofile(self.profile)
        return self

    def __exit__(self, *exc) -> None:
        import threading

        sys.setprofile(None)
        threading.setprofile(None)

    def report(self, name: str) -> dict:
        hops = [(caller, target) for caller, target in self.hops if caller != "<entry>"]
        modules = OrderedDict((target.rsplit(".", 1)[0], None) for _, target in hops)
        pairs = OrderedDict(((caller, target.rsplit(".", 1)[0]), None) for caller, target in hops)
        entered_from: dict[str, list[str]] = {}
        for caller, module in pairs:
            entered_from.setdefault(module, []).append(caller)
        reentered = {m: len(c) for m, c in entered_from.items() if len(c) > 1}
        print(f"\npath {name}: function hops={len(hops)} module hops={len(pairs)} modules={len(modules)}")
        for caller, target in hops:
            print(f"  {caller} -> {target}")
        print(f"  entered from more than one module: {reentered}")
        return {"hops": len(hops), "module_hops": len(pairs), "modules": len(modules), "reentered": reentered}


@pytest.mark.django_db(transaction=True)
def test_update_path(bot, telegram, demo_kb, settings):
    from saas_bot.testing.pytest_plugin import make_update
    from saas_bot.tasking import wait_for_background_tasks

    update = make_update("how long do sharing links stay valid by default?", chat_id=6001)
    Client().get(f"/telegram/webhook/{bot.public_id}/")  # loads the URLconf outside the recording (405)
    with PathRecorder() as recorder:
        response = Client().post(f"/telegram/webhook/{bot.public_id}/", update, content_type="application/json",
                                 HTTP_X_TELEGRAM_BOT_API_SECRET_TOKEN=bot.webhook_secret)
        assert response.status_code == 200
        wait_for_background_tasks()  # eager mode: the task runs in a thread started here (profiled)
    telegram.wait_for_messages(1, timeout=30, chat_id=6001)
    recorder.report("update")


@pytest.mark.django_db(transaction=True)
def test_document_path(company, settings):
    from rag.services import document_add
    from saas_bot.testing.pytest_plugin import DEMO_DIR
    from saas_bot.tasking import wait_for_background_tasks

    path = sorted((DEMO_DIR / "kb").iterdir())[0]
    with PathRecorder() as recorder:
        document, _ = document_add(company=company, file_name=path.name, data=path.read_bytes())
        wait_for_background_tasks()
    document.refresh_from_db()
    assert document.status == "ready", document.error
    recorder.report("document")
