"""The cross-company matrix, generated from the admin registry (issue 5, "Tests").

Every registered ModelAdmin is covered: a company-scoped one (``CompanyScopedAdmin``) needs a factory in
``FACTORIES`` below (the test fails and says so when a new model is registered without one); any other
admin must be invisible to company members. A member of company A must not list, open, change, delete,
export or pick in a foreign key / many-to-many / autocomplete any object of company B; a viewer changes
nothing; platform staff see everything.
"""
from __future__ import annotations

import itertools
import uuid

import pytest
from django.contrib import admin
from django.contrib.auth.models import Group, User
from django.forms import ModelChoiceField
from django.test import RequestFactory
from django.urls import reverse
from django.utils import timezone

from bots.models import Bot, Chat, Conversation, Message, TelegramUser
from rag.models import Collection, Document, GoldenQuestion, KnowledgeBase, KnowledgeBaseVersion, Source, SyncRun
from saas_bot.api.models import ApiKey
from saas_bot.crypto import encrypt_secret
from tenants.access import PLATFORM_STAFF_GROUP
from tenants.admin_scoping import CompanyScopedAdmin, StaffOnlyAdmin
from tenants.models import Invitation, Membership

pytestmark = pytest.mark.django_db
_seq = itertools.count(1)


def _bot(company):
    n = next(_seq)
    return Bot.objects.create(company=company, name=f"{company.slug} bot {n}", username=f"{company.slug}_{n}_bot",
                              telegram_id=9_000_000 + n, token_encrypted=encrypt_secret(f"{n}:x"), token_hint="…")


def _conversation(company):
    return Conversation.objects.create(company=company, bot=_bot(company), channel=Conversation.Channel.API)


def _user(email, **extra):
    return User.objects.create_user(username=email, email=email, password=None, is_staff=True, **extra)


FACTORIES = {
    Bot: _bot,
    Chat: lambda c: Chat.objects.create(company=c, bot=_bot(c), telegram_chat_id=next(_seq), type="private",
                                        title=f"{c.slug} chat"),
    TelegramUser: lambda c: TelegramUser.objects.create(company=c, bot=_bot(c), telegram_user_id=next(_seq),
                                                        username=f"{c.slug}_user"),
    Conversation: _conversation,
    Message: lambda c: Message.objects.create(company=c, bot=(conv := _conversation(c)).bot, conversation=conv,
                                              question=f"{c.slug} question?", answer="An answer."),
    Document: lambda c: Document.objects.create(company=c, title=f"{c.slug} doc", file_name="a.md",
                                                checksum=uuid.uuid4().hex, size_bytes=10),
    Collection: lambda c: Collection.objects.create(company=c, name=f"{c.slug} collection {next(_seq)}"),
    KnowledgeBase: lambda c: KnowledgeBase.objects.get(company=c),  # created with the company
    Source: lambda c: Source.objects.create(company=c, name=f"{c.slug} source {next(_seq)}",
                                            url=f"https://{c.slug}.example/help/"),
    SyncRun: lambda c: SyncRun.objects.create(company=c, source=Source.objects.create(
        company=c, name=f"{c.slug} source {next(_seq)}", url=f"https://{c.slug}.example/"), error=f"{c.slug} run"),
    KnowledgeBaseVersion: lambda c: KnowledgeBaseVersion.objects.create(
        company=c, number=next(_seq), origin="upload", note=f"{c.slug} version",
        changes=[{"action": "added", "document_id": 0, "title": f"{c.slug} doc"}]),
    GoldenQuestion: lambda c: GoldenQuestion.objects.create(company=c, question=f"{c.slug} golden?", must_refuse=True),
    Membership: lambda c: Membership.objects.create(company=c, user=_user(f"m{next(_seq)}@{c.slug}.test"),
                                                    role=Membership.Role.VIEWER),
    Invitation: lambda c: Invitation.objects.create(company=c, email=f"i{next(_seq)}@{c.slug}.test",
                                                    token_hash=uuid.uuid4().hex,
                                                    expires_at=timezone.now() + timezone.timedelta(days=1)),
    ApiKey: lambda c: ApiKey.objects.create_key(company=c, name=f"{c.slug} key {next(_seq)}")[0],
}

SCOPED = sorted(((m, ma) for m, ma in admin.site._registry.items() if isinstance(ma, CompanyScopedAdmin)),
                key=lambda pair: pair[0]._meta.label)
OTHER = sorted(((m, ma) for m, ma in admin.site._registry.items() if not isinstance(ma, CompanyScopedAdmin)),
               key=lambda pair: pair[0]._meta.label)


def _url(model, view, *args):
    return reverse(f"admin:{model._meta.app_label}_{model._meta.model_name}_{view}", args=args)


@pytest.fixture
def world(make_company):
    alpha, beta = make_company("alpha"), make_company("beta")
    owner = _user("owner@alpha.test")
    Membership.objects.create(user=owner, company=alpha, role=Membership.Role.OWNER)
    viewer = _user("viewer@alpha.test")
    Membership.objects.create(user=viewer, company=alpha, role=Membership.Role.VIEWER)
    staff = _user("staff@platform.test")
    staff.groups.add(Group.objects.get_or_create(name=PLATFORM_STAFF_GROUP)[0])
    return {"alpha": alpha, "beta": beta, "owner": owner, "viewer": viewer, "staff": staff}


def _request(user):
    request = RequestFactory().get("/admin/")
    request.user, request.session = user, {}
    return request


def test_every_company_scoped_admin_has_a_factory():
    missing = [m._meta.label for m, _ in SCOPED if m not in FACTORIES]
    assert not missing, f"Add a factory to FACTORIES in {__file__} for: {missing}"
    assert {Bot, Document, Message, Membership} <= {m for m, _ in SCOPED}


@pytest.mark.parametrize("model,model_admin", SCOPED, ids=[m._meta.label for m, _ in SCOPED])
def test_member_never_reaches_another_company(client, world, model, model_admin):
    mine, theirs = FACTORIES[model](world["alpha"]), FACTORIES[model](world["beta"])
    client.force_login(world["owner"])

    listing = client.get(_url(model, "changelist"))
    assert listing.status_code == 200
    shown = set(listing.context["cl"].queryset.values_list("pk", flat=True))
    assert mine.pk in shown and theirs.pk not in shown
    beta_rows = {m: set(m.objects.filter(company=world["beta"]).values_list("pk", flat=True))
                 for m in FACTORIES}
    for spec in listing.context["cl"].filter_specs:
        assert getattr(spec, "field_path", None) != "company", "members get no company filter"
        related = getattr(getattr(spec, "field", None), "related_model", None)
        if related in beta_rows:
            offered = {pk for pk, _ in spec.lookup_choices}
            assert not offered & beta_rows[related], f"filter {spec.title} offers company B's rows"
    searched = client.get(_url(model, "changelist"), {"q": "beta"})
    assert theirs.pk not in set(searched.context["cl"].queryset.values_list("pk", flat=True))

    for view in ("change", "delete", "history"):
        assert client.get(_url(model, view, theirs.pk)).status_code == 404, view
    assert client.post(_url(model, "delete", theirs.pk), {"post": "yes"}).status_code == 404
    assert client.post(_url(model, "change", theirs.pk), {}).status_code == 404

    for action in model_admin.get_actions(_request(world["owner"])):
        response = client.post(_url(model, "changelist"), {"action": action, "_selected_action": [theirs.pk],
                                                           "post": "yes"})
        assert response.status_code in (200, 302), action
        if response.get("Content-Type", "").startswith("text/csv"):
            assert len(response.content.decode().strip().splitlines()) == 1, "only the header row"
        assert model.objects.filter(pk=theirs.pk).exists(), action

    request = _request(world["owner"])
    form_classes = []
    if model_admin.has_add_permission(request):
        form_classes.append(model_admin.get_form(request, None, change=False))
    if model_admin.has_change_permission(request, mine):
        form_classes.append(model_admin.get_form(request, mine, change=True))
    for form_class in form_classes:
        for name, field in form_class.base_fields.items():
            if isinstance(field, ModelChoiceField):
                offered = set(field.queryset.values_list("pk", flat=True))
                if field.queryset.model in beta_rows:
                    assert not offered & beta_rows[field.queryset.model], f"{name} offers company B's rows"
                if field.queryset.model is type(world["beta"]):
                    assert world["beta"].pk not in offered

    for field_name in model_admin.get_autocomplete_fields(request):
        related = model._meta.get_field(field_name).related_model
        FACTORIES[related](world["beta"])
        response = client.get(reverse("admin:autocomplete"), {"app_label": model._meta.app_label,
                                                              "model_name": model._meta.model_name,
                                                              "field_name": field_name, "term": ""})
        ids = {int(r["id"]) for r in response.json()["results"]}
        assert not ids & set(related.objects.filter(company=world["beta"]).values_list("pk", flat=True))


@pytest.mark.parametrize("model,model_admin", SCOPED, ids=[m._meta.label for m, _ in SCOPED])
def test_viewer_changes_nothing(request, client, world, model, model_admin):
    if model is Bot:
        request.getfixturevalue("telegram")  # the change page asks Telegram for the webhook's health
    mine = FACTORIES[model](world["alpha"])
    client.force_login(world["viewer"])
    assert client.get(_url(model, "changelist")).status_code == 200
    assert client.get(_url(model, "add")).status_code == 403
    assert client.post(_url(model, "delete", mine.pk), {"post": "yes"}).status_code == 403
    page = client.get(_url(model, "change", mine.pk))
    assert page.status_code == 200 and not page.context["has_change_permission"]
    for action in model_admin.get_actions(_request(world["viewer"])):
        assert action == "export_csv", f"viewers are offered the action {action}"
    assert model.objects.filter(pk=mine.pk).exists()


@pytest.mark.parametrize("model,model_admin", OTHER, ids=[m._meta.label for m, _ in OTHER])
def test_members_do_not_see_staff_only_models(client, world, model, model_admin):
    client.force_login(world["owner"])
    assert client.get(_url(model, "changelist")).status_code == 403
    index = client.get(reverse("admin:index"))
    assert _url(model, "changelist") not in index.content.decode()


@pytest.mark.parametrize("model,model_admin", SCOPED + OTHER, ids=[m._meta.label for m, _ in SCOPED + OTHER])
def test_platform_staff_see_everything(client, world, model, model_admin):
    """Staff see every company's rows. Admins we did not write (auth users and groups, Celery beat) keep
    Django's permissions: superusers only (a staff group member must not be able to make themselves one)."""
    theirs = FACTORIES[model](world["beta"]) if model in FACTORIES else None
    ours = isinstance(model_admin, (CompanyScopedAdmin, StaffOnlyAdmin))
    user = world["staff"] if ours else User.objects.create_superuser("root", "root@platform.test", None)
    client.force_login(user)
    listing = client.get(_url(model, "changelist"))
    assert listing.status_code == 200
    if theirs is not None:
        assert theirs.pk in set(listing.context["cl"].queryset.values_list("pk", flat=True))
