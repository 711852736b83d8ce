"""python manage.py company_setup --slug acme --name "Acme" --plan starter [--owner EMAIL [--password PW]]"""
from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError
from django.db import transaction

from billing.models import Plan, Subscription
from billing.services import plan_ensure_defaults, subscription_start
from saas_bot.errors import ServiceError
from tenants.models import Company
from tenants.services import company_create, company_owner_ensure


class Command(BaseCommand):
    help = ("Create a company (if missing) and subscribe it to a plan (the default plans are created if missing); "
            "with --owner, create its owner, who can sign in to the admin at once.")

    def add_arguments(self, parser):
        parser.add_argument("--slug", required=True)
        parser.add_argument("--name", default="")
        parser.add_argument("--plan", default="starter", help="Plan code (default plans: free, starter, business).")
        parser.add_argument("--owner", default="", metavar="EMAIL",
                            help="Email of the company's owner: the account is created (or an existing one made "
                                 "owner) and can sign in to /admin/ with this email at once.")
        parser.add_argument("--password", default=None,
                            help="The owner's password (Django's password rules apply). Without it a new owner "
                                 "gets a random password, printed once; an existing account keeps its own.")

    def handle(self, *args, slug: str, name: str, plan: str, owner: str, password: str | None, **options):
        if password is not None and not owner:
            raise CommandError("--password needs --owner EMAIL.")
        plan_ensure_defaults()
        plan_obj = Plan.objects.filter(code=plan).first()
        if plan_obj is None:
            codes = ", ".join(Plan.objects.values_list("code", flat=True))
            raise CommandError(f"No plan '{plan}'. Plans: {codes}")
        # All or nothing: a refused owner (bad email, weak password) leaves no company without an owner behind.
        try:
            with transaction.atomic():
                company = Company.objects.filter(slug=slug).first() or company_create(name=name or slug.title(),
                                                                                     slug=slug)
                live = Subscription.objects.for_company(company).filter(
                    status__in=Subscription.LIVE_STATUSES).first()
                if live is None or live.plan_id != plan_obj.id:
                    live = subscription_start(company=company, plan=plan_obj)
                membership, generated = (company_owner_ensure(company=company, email=owner, password=password)
                                         if owner else (None, None))
        except ServiceError as exc:
            raise CommandError(f"{exc.message} ({exc.code}); nothing was changed.") from exc
        self.stdout.write(f"Company '{company.slug}' on plan '{plan_obj.code}' ({live.status}), "
                          f"period {live.current_period_start:%Y-%m-%d} to {live.current_period_end:%Y-%m-%d}.")
        if membership is not None:
            login = membership.user.username
            if generated:
                self.stdout.write(f"Owner {login} created. Password (shown once): {generated}")
            elif password is not None:
                self.stdout.write(f"Owner {login}: password set.")
            else:
                self.stdout.write(f"Owner {login}: existing account, password unchanged.")
            self.stdout.write("Sign in at /admin/ with that email and password.")
