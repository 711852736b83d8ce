"""``manage.py api_key_create --company acme --name "CMS sync" [--expires-days 90]``: prints the key once."""
from __future__ import annotations

import datetime as dt

from django.core.management.base import BaseCommand, CommandError
from django.utils import timezone

from saas_bot.api.models import ApiKey
from tenants.models import Company


class Command(BaseCommand):
    help = "Create an API key for a company and print it (it is stored hashed and cannot be shown again)."

    def add_arguments(self, parser):
        parser.add_argument("--company", required=True, help="Company slug.")
        parser.add_argument("--name", required=True, help="What the key is for (50 characters at most).")
        parser.add_argument("--expires-days", type=int, default=None, help="Expire after this many days.")

    def handle(self, *args, company: str, name: str, expires_days: int | None, **options):
        try:
            target = Company.objects.get(slug=company)
        except Company.DoesNotExist:
            raise CommandError(f"No company with slug {company!r}.") from None
        if not name.strip() or len(name) > 50:
            raise CommandError("--name must be 1-50 characters.")
        if expires_days is not None and not 0 < expires_days <= 36500:
            raise CommandError(f"--expires-days must be 1 to 36500 (a key of {expires_days} days would be expired "
                               "at once); leave it out for a key that does not expire.")
        expiry = timezone.now() + dt.timedelta(days=expires_days) if expires_days else None
        api_key, key = ApiKey.objects.create_key(name=name.strip(), company=target, expiry_date=expiry)
        self.stderr.write(f"API key {api_key.prefix} for {target.slug} (shown once, keep it secret):")
        self.stdout.write(key)
