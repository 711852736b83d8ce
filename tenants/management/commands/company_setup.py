"""python manage.py company_setup --slug acme --name "Acme" --plan starter"""
from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError

from billing.models import Plan, Subscription
from billing.services import plan_ensure_defaults, subscription_start
from saas_bot.errors import ServiceError
from tenants.models import Company
from tenants.services import company_create


class Command(BaseCommand):
    help = "Create a company (if missing) and subscribe it to a plan (the default plans are created if missing)."

    def add_arguments(self, parser):
        parser.add_argument("--slug", required=True)
        parser.add_argument("--name", default="")
        parser.add_argument("--plan", default="starter", help="Plan code (default plans: free, starter, business).")

    def handle(self, *args, slug: str, name: str, plan: str, **options):
        plan_ensure_defaults()
        plan_obj = Plan.objects.filter(code=plan).first()
        if plan_obj is None:
            codes = ", ".join(Plan.objects.values_list("code", flat=True))
            raise CommandError(f"No plan '{plan}'. Plans: {codes}")
        try:
            company = Company.objects.filter(slug=slug).first() or company_create(name=name or slug.title(), slug=slug)
        except ServiceError as exc:
            raise CommandError(exc.message) from exc
        live = Subscription.objects.for_company(company).filter(status__in=Subscription.LIVE_STATUSES).first()
        if live is None or live.plan_id != plan_obj.id:
            live = subscription_start(company=company, plan=plan_obj)
        self.stdout.write(f"Company '{company.slug}' on plan '{plan_obj.code}' ({live.status}), "
                          f"period {live.current_period_start:%Y-%m-%d} to {live.current_period_end:%Y-%m-%d}.")
