"""python manage.py usage_rebuild [--company SLUG]: recompute usage counters from the ledger."""
from django.core.management.base import BaseCommand

from billing.ledger import usage_rebuild
from tenants.selectors import company_for_command


class Command(BaseCommand):
    help = "Recompute the per-period and per-end-user-day usage counters from the usage ledger."

    def add_arguments(self, parser):
        parser.add_argument("--company", help="Only this company (slug); default all.")

    def handle(self, *args, company=None, **options):
        tenant = company_for_command(company)
        result = usage_rebuild(company=tenant)
        self.stdout.write(self.style.SUCCESS(
            f"Rebuilt {result['company_period_counters']} company-period and "
            f"{result['end_user_day_counters']} end-user-day counters from the ledger."))
