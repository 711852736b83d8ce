"""Plans, subscriptions, quotas and the usage ledger.

- ``UsageEvent`` is the ledger (the truth): one row per billable event, unique idempotency key.
- ``UsageCounter`` and ``EndUserDailyCounter`` are derived from the ledger (rebuildable).
- ``QuotaWindow`` rows are the gates that reservations lock (SELECT ... FOR UPDATE) before work is
  done; ``QuotaReservation`` remembers each reservation under its idempotency key.
- ``PendingUsage`` is the outbox: usage written with the answer, moved to the ledger by a task.
"""
from __future__ import annotations

from django.db import models
from django.utils import timezone

from saas_bot.models import CompanyQuerySet

DEFAULT_LIMIT_MESSAGE = (
    "Sorry, this assistant has reached its message limit for now. Please try again later."
)
# The limit message in the bot's language when neither the bot nor the plan sets one.
DEFAULT_LIMIT_MESSAGES = {
    "en": DEFAULT_LIMIT_MESSAGE,
    "de": "Entschuldigung, dieser Assistent hat sein Nachrichtenlimit erreicht. Bitte versuchen Sie es später erneut.",
    "es": "Lo siento, este asistente ha alcanzado su límite de mensajes. Inténtalo de nuevo más tarde.",
    "fr": "Désolé, cet assistant a atteint sa limite de messages. Veuillez réessayer plus tard.",
    "ru": "Извините, этот помощник исчерпал лимит сообщений. Пожалуйста, попробуйте позже.",
}
LIMIT_FIELDS = ("max_bots", "max_documents", "max_storage_bytes", "max_messages_per_period",
                "max_tokens_per_period", "max_messages_per_end_user_per_day")


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
    limit_message = models.TextField(blank=True, help_text="Sent to end users at the limit; empty = the default "
                                                           "in the bot's language.")

    class Meta:
        ordering = ["price", "code"]

    def limits(self) -> dict[str, int | None]:
        """The plan's limits as a dict (None = unlimited)."""
        return {field: getattr(self, field) for field in LIMIT_FIELDS}

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
    trial_ends_at = models.DateTimeField(null=True, blank=True)
    cancel_at_period_end = models.BooleanField(default=False)
    pending_plan = models.ForeignKey(Plan, null=True, blank=True, on_delete=models.PROTECT, related_name="+",
                                     help_text="Plan that takes over at the end of the period (downgrade).")
    limits = models.JSONField(default=dict, blank=True,
                              help_text="The plan's limits as applied for the current period.")
    canceled_at = models.DateTimeField(null=True, blank=True)
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
    """Per company and period, derived from the ledger: messages, tokens and cost."""

    company = models.ForeignKey("tenants.Company", on_delete=models.CASCADE, related_name="usage_counters")
    period_start = models.DateTimeField()
    messages = models.PositiveIntegerField(default=0)
    tokens = models.BigIntegerField(default=0, help_text="LLM prompt + completion tokens.")
    embedding_tokens = models.BigIntegerField(default=0)
    cost = models.DecimalField(max_digits=14, decimal_places=6, default=0)
    updated_at = models.DateTimeField(auto_now=True)

    objects = CompanyQuerySet.as_manager()

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["company", "period_start"], name="usagecounter_unique_period")
        ]


class EndUserDailyCounter(models.Model):
    """Per company, end user and UTC day, derived from the ledger: answered messages."""

    company = models.ForeignKey("tenants.Company", on_delete=models.CASCADE, related_name="+")
    end_user_id = models.BigIntegerField()
    day = models.DateField()
    messages = models.PositiveIntegerField(default=0)

    objects = CompanyQuerySet.as_manager()

    class Meta:
        constraints = [models.UniqueConstraint(fields=["company", "end_user_id", "day"],
                                               name="enduserdailycounter_unique")]


class QuotaWindow(models.Model):
    """A quota gate: messages and tokens reserved in one window for one subject.

    scope "company" (subject 0, window = period start), "bot" (subject = bot id, window = period
    start) or "end_user" (subject = Telegram user id, window = UTC day). The company row is locked
    first by every reservation of the company, which serialises them.
    """

    company = models.ForeignKey("tenants.Company", on_delete=models.CASCADE, related_name="+")
    scope = models.CharField(max_length=10)
    subject = models.BigIntegerField(default=0)
    window_start = models.DateTimeField()
    messages = models.PositiveIntegerField(default=0)
    tokens = models.BigIntegerField(default=0, help_text="Reserved estimates, replaced by actual usage.")

    objects = CompanyQuerySet.as_manager()

    class Meta:
        constraints = [models.UniqueConstraint(fields=["company", "scope", "subject", "window_start"],
                                               name="quotawindow_unique")]


class QuotaReservation(models.Model):
    """One reserved message, keyed like its usage event, so a redelivery reserves nothing twice."""

    company = models.ForeignKey("tenants.Company", on_delete=models.CASCADE)
    period_start = models.DateTimeField()
    idempotency_key = models.CharField(max_length=200, unique=True)
    bot_id = models.BigIntegerField(null=True, blank=True)
    end_user_id = models.BigIntegerField(null=True, blank=True)
    day = models.DateTimeField(null=True, blank=True)
    tokens_reserved = models.IntegerField(default=0)
    settled = models.BooleanField(default=False)
    released = models.BooleanField(default=False, help_text="The answer was never delivered: its message was "
                                                            "given back (tokens stay counted).")
    created_at = models.DateTimeField(auto_now_add=True)

    objects = CompanyQuerySet.as_manager()


class LimitNotice(models.Model):
    """The limit message was sent to this end user today (it is sent at most once a day)."""

    company = models.ForeignKey("tenants.Company", on_delete=models.CASCADE, related_name="+")
    end_user_id = models.BigIntegerField()
    day = models.DateField()

    class Meta:
        constraints = [models.UniqueConstraint(fields=["company", "end_user_id", "day"], name="limitnotice_unique")]


class LimitAlert(models.Model):
    """A company was told (email + admin banner) that a limit reached 80 % or 100 % in a period."""

    company = models.ForeignKey("tenants.Company", on_delete=models.CASCADE, related_name="limit_alerts")
    period_start = models.DateTimeField()
    limit = models.CharField(max_length=40)
    threshold = models.PositiveSmallIntegerField(help_text="Percent: 80 or 100.")
    used = models.BigIntegerField(default=0)
    maximum = models.BigIntegerField(default=0)
    created_at = models.DateTimeField(auto_now_add=True)
    dismissed_at = models.DateTimeField(null=True, blank=True)

    objects = CompanyQuerySet.as_manager()

    class Meta:
        constraints = [models.UniqueConstraint(fields=["company", "period_start", "limit", "threshold"],
                                               name="limitalert_unique")]


class ModelPrice(models.Model):
    """Price of a model per 1,000 prompt and completion tokens; each usage event carries its cost."""

    model = models.CharField(max_length=100, unique=True)
    prompt_per_1k = models.DecimalField(max_digits=10, decimal_places=6, default=0)
    completion_per_1k = models.DecimalField(max_digits=10, decimal_places=6, default=0)
    currency = models.CharField(max_length=3, default="USD")

    def __str__(self) -> str:
        return self.model


class PendingUsage(models.Model):
    """The usage outbox: written in the answer's transaction, moved to the ledger by a Celery task.

    If the broker is down the row waits here; the sweep (beat) sends it again. The ledger's
    unique idempotency key makes any redelivery insert nothing.
    """

    idempotency_key = models.CharField(max_length=200, unique=True)
    payload = models.JSONField()
    attempts = models.PositiveIntegerField(default=0)
    created_at = models.DateTimeField(auto_now_add=True)
    last_error = models.TextField(blank=True, default="", db_default="",
                                  help_text="Why recording it failed for a reason a retry cannot fix; the sweep "
                                            "leaves such rows (usage_check reports them).")


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
    cost = models.DecimalField(max_digits=14, decimal_places=6, default=0,
                               help_text="From ModelPrice at recording time (0 for unpriced models).")
    channel = models.CharField(max_length=20, default="telegram")
    tokens_estimated = models.BooleanField(
        default=False, help_text="The provider reported no token usage; prompt and completion were counted "
                                 "with tiktoken (rag.usage).")
    period_start = models.DateTimeField()
    occurred_at = models.DateTimeField(default=timezone.now, help_text="When the billable work happened.")
    created_at = models.DateTimeField(auto_now_add=True)

    objects = CompanyQuerySet.as_manager()

    class Meta:
        indexes = [models.Index(fields=["company", "period_start"], name="usageevent_company_period"),
                   models.Index(fields=["company", "occurred_at"], name="usageevent_company_occurred")]
