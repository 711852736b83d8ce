"""python manage.py usage_check [--company SLUG]: report drift between counters and the ledger."""
from django.core.management.base import BaseCommand, CommandError

from billing.ledger import usage_drift
from billing.models import PendingUsage
from tenants.selectors import company_for_command


class Command(BaseCommand):
    help = "Compare the usage counters with the ledger; exit status 1 if they differ (then run usage_rebuild)."

    def add_arguments(self, parser):
        parser.add_argument("--company", help="Only this company (slug); default all.")

    def handle(self, *args, company=None, **options):
        tenant = company_for_command(company)
        drift = usage_drift(company=tenant)
        pending = PendingUsage.objects.count()
        for row in drift:
            where = row.get("period_start") or f"end user {row['end_user_id']} on {row['day']}"
            self.stdout.write(f"company {row['company_id']} {where}: {row['field']} counter={row['counter']} "
                              f"ledger={row['ledger']}")
        self.stdout.write(f"{pending} usage events waiting in the outbox (not yet in the ledger).")
        if drift:
            raise CommandError(f"{len(drift)} counter(s) differ from the ledger; run usage_rebuild.")
        self.stdout.write(self.style.SUCCESS("Counters match the ledger."))
