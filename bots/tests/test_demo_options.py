"""make demo's fixed ports are checked before anything starts; the demo bot is disabled when the demo ends."""
import socket

import pytest
from django.core.management import CommandError, call_command

from bots.demo import DEMO_BOT_NAME, DEMO_TOKEN, _disable_demo_bot
from bots.models import Bot


def test_a_port_in_use_or_out_of_range_is_a_clear_error(tmp_path):
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        with pytest.raises(CommandError, match=f"PORT={port}: 127.0.0.1:{port} is in use"):
            call_command("demo", "--kb", str(tmp_path), "--updates", str(tmp_path), "--port", str(port))
    with pytest.raises(CommandError, match="TELEGRAM_PORT=70000 is not a port"):
        call_command("demo", "--kb", str(tmp_path), "--updates", str(tmp_path), "--telegram-port", "70000")



def test_a_port_left_in_time_wait_by_the_last_demo_is_free():
    """Found by a new user: a second demo a minute after the first was refused ("is in use") with nothing
    listening, only connections in TIME_WAIT; gunicorn and the emulator (SO_REUSEADDR) could have listened."""
    from bots.demo import _port_free

    server = socket.socket()
    server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as gunicorn and http.server listen
    server.bind(("127.0.0.1", 0))
    server.listen()
    port = server.getsockname()[1]
    client = socket.create_connection(("127.0.0.1", port))
    accepted, _ = server.accept()
    assert not _port_free(port)  # listening: in use
    accepted.close()  # the server side closes first, so its end of the connection waits in TIME_WAIT
    client.recv(1)
    client.close()
    server.close()
    assert _port_free(port)

def test_an_empty_kb_folder_is_refused_before_anything_changes(tmp_path):
    kb, updates = tmp_path / "kb", tmp_path / "updates"
    kb.mkdir()
    updates.mkdir()
    with pytest.raises(CommandError, match="has no files"):
        call_command("demo", "--kb", str(kb), "--updates", str(updates))


@pytest.mark.django_db
def test_the_demo_bot_is_disabled_and_its_webhook_removed(company, telegram, settings):
    from bots.lifecycle import bot_connect
    from bots.telegram_setup import bot_register_webhook

    settings.PUBLIC_BASE_URL = "http://127.0.0.1:9"
    telegram.add_bot(DEMO_TOKEN, username="acme_support_bot")
    bot = bot_connect(company=company, token=DEMO_TOKEN, name=DEMO_BOT_NAME, register_webhook=False)
    bot_register_webhook(bot=bot)
    assert telegram.webhook(DEMO_TOKEN)["url"].startswith("http://127.0.0.1:9/telegram/webhook/")
    lines = []
    _disable_demo_bot(bot, telegram, lines.append)
    assert Bot.objects.get(pk=bot.pk).status == Bot.Status.DISABLED
    assert telegram.webhook(DEMO_TOKEN) is None
    assert "disabled (webhook removed)" in lines[0]


@pytest.mark.django_db
def test_a_demo_that_fails_still_disables_its_bot(tmp_path, monkeypatch):
    """A file of the KB folder cannot be read (the demo goes on with the others), then the web app cannot
    start (a settings module that does not exist): run_demo raises, and the bot it connected is disabled
    anyway, so nothing stays enabled against the emulator that is gone."""
    from bots.demo import DEMO_BOT_ID, run_demo

    kb, updates = tmp_path / "kb", tmp_path / "updates"
    kb.mkdir()
    updates.mkdir()
    (kb / "parking.txt").write_text("Parking is free for visitors in the front lot.\n")
    (kb / "broken.pdf").write_bytes(b"this is not a PDF")
    monkeypatch.setenv("DJANGO_SETTINGS_MODULE", "no_such_settings_module")
    lines = []
    with pytest.raises(RuntimeError, match="the web app exited"):
        run_demo(kb=kb, updates=updates, out=lines.append)
    bot = Bot.objects.get(telegram_id=DEMO_BOT_ID)
    assert bot.status == Bot.Status.DISABLED
    assert any("could not be indexed" in line and "goes on with the files that were indexed" in line
               for line in lines)
    assert any("disabled (webhook removed)" in line for line in lines)


def test_an_empty_kb_or_updates_value_is_refused(tmp_path):
    # `make demo KB=` passed --kb "" and the demo indexed the current folder: the whole repository.
    with pytest.raises(CommandError, match="KB is empty"):
        call_command("demo", "--kb", "", "--updates", str(tmp_path))
    with pytest.raises(CommandError, match="UPDATES is empty"):
        call_command("demo", "--kb", str(tmp_path), "--updates", " ")


@pytest.mark.django_db
def test_the_demo_runs_in_its_own_company_and_leaves_acme_alone(tmp_path, monkeypatch, make_company, telegram):
    """A trial user's uploads to "acme" were deleted by the next `make demo` (it replaces its company's knowledge
    base with the KB folder, and ran in "acme"). The demo now has its own company; a demo bot left in "acme" by an
    earlier demo is removed there, and acme's documents stay."""
    from bots.demo import DEMO_BOT_ID, DEMO_COMPANY, run_demo
    from bots.lifecycle import bot_connect
    from rag.models import Document
    from rag.services import document_add_text

    acme = make_company("acme")
    mine, _ = document_add_text(company=acme, title="Office", text="# Office\nThe parking code is 4711.")
    telegram.add_bot(DEMO_TOKEN, id=DEMO_BOT_ID, username="acme_support_bot")
    bot_connect(company=acme, token=DEMO_TOKEN, name=DEMO_BOT_NAME, register_webhook=False)
    kb, updates = tmp_path / "kb", tmp_path / "updates"
    kb.mkdir()
    updates.mkdir()
    (kb / "visitors.txt").write_text("Parking is free for visitors in the front lot.\n")
    monkeypatch.setenv("DJANGO_SETTINGS_MODULE", "no_such_settings_module")  # stop once the KB is ingested
    lines = []
    with pytest.raises(RuntimeError, match="the web app exited"):
        run_demo(kb=kb, updates=updates, out=lines.append)
    assert Document.objects.filter(id=mine.id, company=acme).exists()
    assert not Bot.objects.filter(company=acme).exists()
    demo_bot = Bot.objects.get(telegram_id=DEMO_BOT_ID)
    assert demo_bot.company.slug == DEMO_COMPANY
    assert list(Document.objects.filter(company=demo_bot.company).values_list("file_name", flat=True)) == \
        ["visitors.txt"]
    assert any("removing the demo bot of an earlier demo from company 'acme'" in line for line in lines)
