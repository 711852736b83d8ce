"""python manage.py usage_rebuild [--company SLUG]: recompute usage counters from the ledger."""
from django.core.management.base import BaseCommand, CommandError

from billing.ledger import usage_rebuild
from saas_bot.errors import ServiceError
from tenants.selectors import company_get_by_slug


class Command(BaseCommand):
    help = "Recompute the per-period and per-end-user-day usage counters from the usage ledger."

    def add_arguments(self, parser):
        parser.add_argument("--company", help="Only this company (slug); default all.")

    def handle(self, *args, company=None, **options):
        try:
            tenant = company_get_by_slug(slug=company) if company else None
        except ServiceError as exc:
            raise CommandError(exc.message) from exc
        result = usage_rebuild(company=tenant)
        self.stdout.write(self.style.SUCCESS(
            f"Rebuilt {result['company_period_counters']} company-period and "
            f"{result['end_user_day_counters']} end-user-day counters from the ledger."))
