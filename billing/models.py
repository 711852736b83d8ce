"""Plans, subscriptions and the usage ledger.

``UsageEvent`` is the ledger (the truth); ``UsageCounter`` rows are derived
from it per company and period and hold the atomic quota reservations.
"""
from __future__ import annotations

from django.db import models

from saas_bot.models import CompanyQuerySet

DEFAULT_LIMIT_MESSAGE = (
    "Sorry, this assistant has reached its message limit for now. Please try again later."
)


class Plan(models.Model):
    """What a subscription buys. Every limit is nullable: null means unlimited."""

    code = models.SlugField(max_length=40, unique=True)
    name = models.CharField(max_length=100)
    price = models.DecimalField(max_digits=10, decimal_places=2, default=0)
    currency = models.CharField(max_length=3, default="EUR")
    trial_days = models.PositiveIntegerField(default=0)
    is_public = models.BooleanField(default=True)
    is_archived = models.BooleanField(default=False)
    max_bots = models.PositiveIntegerField(null=True, blank=True, help_text="Bots per company; empty = unlimited.")
    max_documents = models.PositiveIntegerField(null=True, blank=True, help_text="Documents; empty = unlimited.")
    max_storage_bytes = models.BigIntegerField(null=True, blank=True, help_text="Bytes of uploaded files.")
    max_messages_per_period = models.PositiveIntegerField(
        null=True, blank=True, help_text="Answered messages per billing period (month)."
    )
    max_tokens_per_period = models.BigIntegerField(null=True, blank=True, help_text="LLM tokens per period.")
    max_messages_per_end_user_per_day = models.PositiveIntegerField(null=True, blank=True)
    limit_message = models.TextField(default=DEFAULT_LIMIT_MESSAGE, help_text="Sent to end users at the limit.")

    class Meta:
        ordering = ["price", "code"]

    def __str__(self) -> str:
        return self.name


class Subscription(models.Model):
    """A company's subscription to a plan; at most one live one per company (constraint)."""

    class Status(models.TextChoices):
        TRIALING = "trialing", "Trialing"
        ACTIVE = "active", "Active"
        PAST_DUE = "past_due", "Past due"
        CANCELED = "canceled", "Canceled"

    LIVE_STATUSES = (Status.TRIALING, Status.ACTIVE, Status.PAST_DUE)

    company = models.ForeignKey("tenants.Company", on_delete=models.CASCADE, related_name="subscriptions")
    plan = models.ForeignKey(Plan, on_delete=models.PROTECT, related_name="subscriptions")
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.ACTIVE)
    started_at = models.DateTimeField(help_text="Anchor of the monthly periods.")
    current_period_start = models.DateTimeField()
    current_period_end = models.DateTimeField()
    created_at = models.DateTimeField(auto_now_add=True)

    objects = CompanyQuerySet.as_manager()

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["company"],
                condition=models.Q(status__in=["trialing", "active", "past_due"]),
                name="subscription_one_live_per_company",
            )
        ]

    def __str__(self) -> str:
        return f"{self.company} on {self.plan} ({self.status})"


class UsageCounter(models.Model):
    """Per company and period: messages reserved (the quota gate) and tokens used.

    Derived from the ledger; the row is locked (SELECT ... FOR UPDATE) while a
    message is reserved, which is what makes the limit hold under concurrency.
    """

    company = models.ForeignKey("tenants.Company", on_delete=models.CASCADE, related_name="usage_counters")
    period_start = models.DateTimeField()
    messages = models.PositiveIntegerField(default=0)
    tokens = models.BigIntegerField(default=0)
    updated_at = models.DateTimeField(auto_now=True)

    objects = CompanyQuerySet.as_manager()

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["company", "period_start"], name="usagecounter_unique_period")
        ]


class QuotaReservation(models.Model):
    """One reserved message, keyed like its usage event, so a redelivery reserves nothing twice."""

    company = models.ForeignKey("tenants.Company", on_delete=models.CASCADE)
    period_start = models.DateTimeField()
    idempotency_key = models.CharField(max_length=200, unique=True)
    created_at = models.DateTimeField(auto_now_add=True)

    objects = CompanyQuerySet.as_manager()


class UsageEvent(models.Model):
    """One billable event. The ledger is the truth; counters are derived from it."""

    class Kind(models.TextChoices):
        MESSAGE = "message", "Answered message"
        LLM_TOKENS = "llm_tokens", "LLM tokens"
        EMBEDDING_TOKENS = "embedding_tokens", "Embedding tokens"

    idempotency_key = models.CharField(max_length=200, unique=True)
    company = models.ForeignKey("tenants.Company", on_delete=models.CASCADE, related_name="usage_events")
    bot = models.ForeignKey("bots.Bot", null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    end_user_id = models.BigIntegerField(null=True, blank=True, help_text="Telegram user id, when known.")
    kind = models.CharField(max_length=20, choices=Kind.choices, default=Kind.MESSAGE)
    quantity = models.IntegerField(default=1)
    prompt_tokens = models.IntegerField(default=0)
    completion_tokens = models.IntegerField(default=0)
    model = models.CharField(max_length=100, blank=True)
    channel = models.CharField(max_length=20, default="telegram")
    period_start = models.DateTimeField()
    created_at = models.DateTimeField(auto_now_add=True)

    objects = CompanyQuerySet.as_manager()

    class Meta:
        indexes = [models.Index(fields=["company", "period_start"], name="usageevent_company_period")]
