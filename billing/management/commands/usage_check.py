"""python manage.py usage_check [--company SLUG] [--retry-failed]: report drift between counters and the ledger,
and usage events the outbox could not record."""
from django.core.management.base import BaseCommand, CommandError

from billing.ledger import usage_drift
from billing.models import PendingUsage
from billing.tasks import usage_record_task
from saas_bot.tasking import enqueue
from tenants.selectors import company_for_command


class Command(BaseCommand):
    help = "Compare the usage counters with the ledger; exit status 1 if they differ (then run usage_rebuild)."

    def add_arguments(self, parser):
        parser.add_argument("--company", help="Only this company (slug); default all.")
        parser.add_argument("--retry-failed", action="store_true",
                            help="Send the outbox rows whose recording failed again (after fixing the cause).")

    def handle(self, *args, company=None, retry_failed=False, **options):
        tenant = company_for_command(company)
        failed = PendingUsage.objects.exclude(last_error="").order_by("created_at")
        if retry_failed:
            keys = list(failed.values_list("idempotency_key", flat=True))
            failed.update(last_error="")
            for key in keys:
                enqueue(usage_record_task, key)
            self.stdout.write(f"{len(keys)} failed usage event(s) sent again.")
        drift = usage_drift(company=tenant)
        pending = PendingUsage.objects.count()
        stuck = list(failed.values_list("idempotency_key", "last_error")[:50])
        for key, error in stuck:
            self.stdout.write(f"outbox {key}: not recorded: {error}")
        for row in drift:
            where = row.get("period_start") or f"end user {row['end_user_id']} on {row['day']}"
            self.stdout.write(f"company {row['company_id']} {where}: {row['field']} counter={row['counter']} "
                              f"ledger={row['ledger']}")
        self.stdout.write(f"{pending} usage events waiting in the outbox (not yet in the ledger).")
        if drift:
            raise CommandError(f"{len(drift)} counter(s) differ from the ledger; run usage_rebuild.")
        if stuck:
            raise CommandError(f"{failed.count()} usage event(s) could not be recorded (see above); fix the cause, "
                               "then run usage_check --retry-failed.")
        self.stdout.write(self.style.SUCCESS("Counters match the ledger."))
