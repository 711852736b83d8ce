"""Browser tests in headless Chromium (Debian's chromium, Playwright's Python package) on the live server.

Screenshots of every step: var/screenshots/<test>/ (with SCREENSHOTS_TO_DOCS=1 also docs/images/admin-*.png).
Outside CI they skip when /usr/bin/chromium is absent; under CI=true they must run.
"""
import io

import pytest
from django.contrib.auth.models import User

from bots.models import Bot, Message
from saas_bot.testing.pytest_plugin import DEMO_DIR, TEST_BOT_ID, TEST_TOKEN, TEST_USERNAME, wait_until
from tenants.models import Membership

pytestmark = [pytest.mark.slow]

PASSWORD = "a-long-test-password-1"


def _company_admin(company, username="ada"):
    user = User.objects.create_user(username, email=f"{username}@example.com", password=PASSWORD, is_staff=True)
    Membership.objects.create(user=user, company=company, role=Membership.Role.ADMIN)
    return user


def test_flow_a_playground_usage_and_knowledge_gaps(bot, browser):
    from rag.services import document_add, documents_ingest

    documents = [document_add(company=bot.company, file_name=name, data=(DEMO_DIR / "kb" / name).read_bytes(),
                              schedule=False)[0] for name in ("sharing-links.md", "api-and-webhooks.pdf")]
    documents_ingest(company=bot.company, documents=documents)
    user = _company_admin(bot.company)
    page = browser.page

    browser.login(user.username, PASSWORD)
    browser.goto(f"/admin/playground/{bot.id}/")
    page.fill("#id_question", "what is the rate limit of the api?")
    page.click("#playground-form input[type=submit][value=Ask]")
    source = page.locator(".playground-source").first
    source.wait_for()
    assert "API" in source.inner_text() and "page" in source.inner_text()
    assert page.locator(".playground-usage").first.inner_text().startswith("Answered")
    browser.shot("playground")
    page.click("button[name=action][value=new]")  # a new topic: no memory of the API question
    page.locator(".messagelist .info").wait_for()
    page.fill("#id_question", "Can I pay for my plan with PayPal?")
    page.click("#playground-form input[type=submit][value=Ask]")
    page.locator(".playground-turn").first.wait_for()
    assert page.locator(".messagelist .warning").inner_text().startswith("Not found in the documents")
    browser.shot("playground-not-found")
    assert list(Message.objects.filter(bot=bot, conversation__channel="playground").order_by("id")
                .values_list("status", flat=True)) == ["answered", "not_found"]

    browser.goto("/admin/usage/")
    # plotly draws an SVG into the chart's div once plotly.js (served by us) has run
    page.locator("#usage-messages-chart .main-svg").first.wait_for()
    assert page.locator("#usage-messages-chart .trace.bars").count() == 1  # one bot, one trace
    assert "No chat-model tokens" in page.locator("#usage-tokens-chart").inner_text()  # extractive answers
    assert "Messages this period" in page.locator("#usage-limits").inner_text()
    browser.shot("usage")

    browser.goto("/admin/knowledge-gaps/")
    group = page.locator(".gap-group").first
    assert "PayPal" in group.inner_text() and "asked 1 time" in group.inner_text()
    browser.shot("knowledge-gaps")


def test_staff_see_usage_across_companies(bot, make_company, browser):
    make_company("globex", max_messages_per_period=50, max_documents=10)
    User.objects.create_superuser("root", email="root@example.com", password=PASSWORD)
    page = browser.page
    browser.login("root", PASSWORD)
    browser.goto("/admin/usage/")
    page.select_option("#id_company", label="Globex")  # the chooser submits itself
    page.wait_for_url("**/admin/usage/?company=*")
    assert "No messages yet this period" in page.locator("#usage-messages-chart").inner_text()  # nothing drawn
    assert "Globex" in page.locator("#content-main h2").first.inner_text()
    rows = page.locator("#usage-all-companies tbody tr")
    assert rows.count() == 2 and "Acme" in rows.nth(0).inner_text() and "Globex" in rows.nth(1).inner_text()
    with page.expect_download() as download:
        page.click("text=Export CSV (all companies)")
    assert download.value.suggested_filename == "usage-companies.csv"
    browser.shot("usage-staff")


def test_first_day_owner_from_the_command_line_connects_a_bot_uploads_and_asks(telegram, browser):
    """A new company's first day (issue 16), as README's first section walks it: ``company_setup --owner`` →
    the landing page → sign in → connect a bot (emulator) → upload a PDF and a DOCX → ask in the
    playground → the usage chart."""
    from django.core.management import call_command

    from tenants.models import Company

    call_command("company_setup", "--slug", "firstday", "--name", "First Day Ltd", "--plan", "starter",
                 "--owner", "owner@firstday.example", "--password", PASSWORD, stdout=io.StringIO())
    owner = User.objects.get(email="owner@firstday.example")
    assert not owner.is_staff  # membership alone opens the admin
    company = Company.objects.get(slug="firstday")
    telegram.add_bot(TEST_TOKEN, id=TEST_BOT_ID, username=TEST_USERNAME, first_name="First Day Support")
    page = browser.page

    browser.goto("/")
    browser.shot("landing")
    page.click("text=Sign in to the admin")
    page.wait_for_url("**/admin/login/**")
    page.fill("#id_username", "owner@firstday.example")
    page.fill("#id_password", PASSWORD)
    page.click("input[type=submit]")
    page.wait_for_url(lambda url: "/admin/login/" not in url)
    assert "First Day Ltd" in page.locator("#branding").inner_text()
    browser.shot("index")

    browser.goto("/admin/bots/bot/add/")
    page.fill("input[name=token]", TEST_TOKEN)
    browser.shot("bot-add")
    page.click("input[name=_save]")
    bot = wait_until(lambda: Bot.objects.filter(company=company, username=TEST_USERNAME).first(), timeout=30)
    page.locator(".messagelist .success").first.wait_for()  # the admin's "added successfully"
    browser.shot("bots")

    browser.goto("/admin/rag/document/add/")
    page.set_input_files("input[name=files]", [str(DEMO_DIR / "kb" / "api-and-webhooks.pdf"),
                                               str(DEMO_DIR / "kb" / "team-admin-console.docx")])
    page.click("input[name=_save]")

    def ready_in_list():
        browser.goto("/admin/rag/document/")
        return page.locator("#result_list tbody tr", has_text="Ready").count() == 2

    wait_until(ready_in_list, timeout=180, interval=1)
    browser.shot("documents")

    browser.goto(f"/admin/playground/{bot.id}/")
    page.fill("#id_question", "how do I remove a user who left but keep their files?")
    page.click("#playground-form input[type=submit][value=Ask]")
    source = page.locator(".playground-source").first
    source.wait_for()
    assert page.locator(".playground-turn").first.get_attribute("data-status") == "answered"
    browser.shot("playground-after-upload")

    browser.goto("/admin/usage/")
    page.locator("#usage-messages-chart .main-svg").first.wait_for()
    assert page.locator("#usage-messages-chart .trace.bars").count() == 1
    # extractive answers use no chat-model tokens: the tokens chart says so instead of an empty axis
    assert "No chat-model tokens" in page.locator("#usage-tokens-chart").inner_text()
    assert page.locator("#usage-cost").inner_text() == "$0.00"
    browser.shot("usage-after-upload")
