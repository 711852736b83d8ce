"""python manage.py usage_export --start YYYY-MM-DD --end YYYY-MM-DD [--company SLUG] [--output FILE]"""
import datetime as dt

from django.core.management.base import BaseCommand, CommandError

from billing.selectors import rows_to_csv, usage_daily, usage_report
from tenants.selectors import company_for_command


def _date(value: str) -> dt.date:
    try:
        return dt.date.fromisoformat(value)
    except ValueError:
        raise CommandError(f"'{value}' is not a date (YYYY-MM-DD).") from None


class Command(BaseCommand):
    help = ("CSV of usage: per company across all companies (staff report), or per day for one company. "
            "--end is inclusive.")

    def add_arguments(self, parser):
        parser.add_argument("--start", required=True)
        parser.add_argument("--end", required=True)
        parser.add_argument("--company", help="Daily rows for this company instead of the staff report.")
        parser.add_argument("--output", help="Write to this file instead of standard output.")

    def handle(self, *args, start, end, company=None, output=None, **options):
        first, last = _date(start), _date(end)
        if last < first:
            raise CommandError("--end is before --start.")
        if company:
            tenant = company_for_command(company)
            rows = usage_daily(company=tenant, start=first, end=last)
        else:
            utc = dt.timezone.utc
            rows = usage_report(start=dt.datetime.combine(first, dt.time(), utc),
                                end=dt.datetime.combine(last + dt.timedelta(days=1), dt.time(), utc))
        text = rows_to_csv(rows)
        if output:
            with open(output, "w", newline="") as handle:
                handle.write(text)
            self.stdout.write(f"{len(rows)} rows written to {output}.")
        else:
            self.stdout.write(text, ending="")
