"""Telegram bots, the inbox of updates, chats and the conversation log."""
from __future__ import annotations

import secrets

from django.conf import settings
from django.db import models

from saas_bot.models import CompanyQuerySet

DEFAULT_WELCOME = "Hello! Ask me anything about our products and services, and I will answer from our documentation."
DEFAULT_HELP = (
    "Send me a question in plain words, for example \"How do I reset my password?\". "
    "I answer from the company's documents and list my sources. "
    "Commands: /start - welcome, /help - this help."
)
DEFAULT_PERSONA = (
    "You are a helpful support assistant. Answer only from the context. "
    "If the context does not contain the answer, say that you do not know."
)


def new_public_id() -> str:
    """An opaque id for the webhook URL (128 random bits, URL-safe)."""
    return secrets.token_urlsafe(16)


def new_webhook_secret() -> str:
    """A webhook secret: Telegram allows 1-256 characters A-Z a-z 0-9 _ - (Bot API, setWebhook)."""
    return secrets.token_urlsafe(32)


class Bot(models.Model):
    """A company's Telegram bot. The token is stored encrypted (Fernet) and never shown again."""

    class Status(models.TextChoices):
        ACTIVE = "active", "Active"
        DISABLED = "disabled", "Disabled"
        TOKEN_REVOKED = "token_revoked", "Token revoked (replace it)"

    company = models.ForeignKey("tenants.Company", on_delete=models.CASCADE, related_name="bots")
    name = models.CharField(max_length=100)
    username = models.CharField(max_length=64, blank=True, help_text="From Telegram's getMe.")
    telegram_id = models.BigIntegerField(null=True, blank=True, help_text="From Telegram's getMe.")
    token_encrypted = models.TextField()
    token_hint = models.CharField(max_length=16, blank=True, help_text="Masked token, for recognising it.")
    public_id = models.CharField(max_length=32, unique=True, default=new_public_id, editable=False)
    webhook_secret = models.CharField(max_length=256, default=new_webhook_secret, editable=False)
    persona = models.TextField(default=DEFAULT_PERSONA, help_text="System prompt for the chat model.")
    welcome_text = models.TextField(default=DEFAULT_WELCOME)
    help_text = models.TextField(default=DEFAULT_HELP)
    language = models.CharField(max_length=10, default="en")
    limit_message = models.TextField(blank=True, help_text="Sent to end users at a limit; empty = the plan's.")
    max_messages_per_period = models.PositiveIntegerField(
        null=True, blank=True, help_text="This bot's cap within the plan (answered messages per period).")
    class EditedMessages(models.TextChoices):
        IGNORE = "ignore", "Ignore (reply once that edits are not answered)"
        ANSWER = "answer", "Answer the edited question again"

    edited_messages = models.CharField(max_length=10, choices=EditedMessages.choices, default=EditedMessages.IGNORE,
                                       help_text="What to do when an end user edits a question already sent.")
    conversation_idle_minutes = models.PositiveIntegerField(
        default=60, help_text="A conversation ends after this many minutes without messages (its memory is "
                              "not used for the next question). /new ends it at once.")
    collections = models.ManyToManyField(
        "rag.Collection", blank=True, related_name="bots",
        help_text="Answer only from these collections' documents. None chosen = all the company's documents.")
    status = models.CharField(max_length=20, choices=Status.choices, default=Status.ACTIVE)
    webhook_url = models.URLField(blank=True)
    last_error = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    objects = CompanyQuerySet.as_manager()

    def __str__(self) -> str:
        return f"@{self.username}" if self.username else self.name


class TelegramUpdate(models.Model):
    """The inbox: every accepted update, stored raw before anything else happens.

    Unique per (bot, update_id): a redelivered update is acknowledged and not
    processed twice.
    """

    class Status(models.TextChoices):
        PENDING = "pending", "Pending"
        PROCESSING = "processing", "Processing"
        DONE = "done", "Done"
        IGNORED = "ignored", "Ignored"
        FAILED = "failed", "Failed"

    company = models.ForeignKey("tenants.Company", on_delete=models.CASCADE, related_name="+")
    bot = models.ForeignKey(Bot, on_delete=models.CASCADE, related_name="updates")
    update_id = models.BigIntegerField()
    payload = models.JSONField()
    status = models.CharField(max_length=12, choices=Status.choices, default=Status.PENDING)
    attempts = models.PositiveIntegerField(default=0)
    error = models.TextField(blank=True)
    received_at = models.DateTimeField(auto_now_add=True)
    locked_at = models.DateTimeField(null=True, blank=True,
                                     help_text="Claimed by a worker; refreshed by its heartbeat while it works.")
    locked_by = models.CharField(max_length=100, blank=True, help_text="The worker holding the claim (host:pid).")
    not_before = models.DateTimeField(null=True, blank=True,
                                      help_text="Telegram asked to wait (429) or the send slot is later: not "
                                                "processed before this time; the sweep re-enqueues it then.")
    slot_at = models.FloatField(null=True, blank=True, help_text="The send time reserved for it (Unix seconds).")
    sent_message_ids = models.JSONField(default=list, blank=True,
                                        help_text="Telegram ids of the reply's parts sent so far (a reply "
                                                  "interrupted by a long wait resumes after them).")
    processed_at = models.DateTimeField(null=True, blank=True)

    objects = CompanyQuerySet.as_manager()

    class Meta:
        constraints = [models.UniqueConstraint(fields=["bot", "update_id"], name="telegramupdate_unique_bot_update")]
        indexes = [models.Index(fields=["status", "received_at"], name="telegramupdate_status_received")]

    @property
    def answer_key(self) -> str:
        """The idempotency key of the answer to this update: ``tg:<bot id>:<update_id>`` (quota, message, usage)."""
        return f"tg:{self.bot_id}:{self.update_id}"


class UpdateHandoff(models.Model):
    """The inbox's outbox: stored updates not yet handed to the broker (the transactional-outbox pattern).

    The webhook writes the update and its handoff row in one statement (one round trip, committed before the
    200); the relay (:func:`bots.inbox.inbox_relay_batch`, run by the answers worker or ``manage.py
    inbox_relay``) deletes rows in batches and publishes one ``bots.process_update`` task per row. No foreign
    key (the webhook's INSERT stays one cheap statement): a row whose update was deleted publishes a task
    that finds nothing to claim.
    """

    update_pk = models.BigIntegerField(help_text="The TelegramUpdate's id.")
    bot_id = models.BigIntegerField(help_text="Its bot (fair-queueing priority is counted per bot).")

    class Meta:
        db_table = "bots_updatehandoff"


class TelegramUser(models.Model):
    """An end user (a Telegram account) a bot has heard from."""

    company = models.ForeignKey("tenants.Company", on_delete=models.CASCADE, related_name="+")
    bot = models.ForeignKey(Bot, on_delete=models.CASCADE, related_name="end_users")
    telegram_user_id = models.BigIntegerField()
    username = models.CharField(max_length=64, blank=True)
    first_name = models.CharField(max_length=255, blank=True)
    last_name = models.CharField(max_length=255, blank=True)
    language_code = models.CharField(max_length=16, blank=True)
    first_seen_at = models.DateTimeField(auto_now_add=True)
    last_seen_at = models.DateTimeField(auto_now=True)

    objects = CompanyQuerySet.as_manager()

    class Meta:
        verbose_name = "end user"
        constraints = [models.UniqueConstraint(fields=["bot", "telegram_user_id"], name="telegramuser_unique_bot_user")]

    def __str__(self) -> str:
        name = " ".join(part for part in (self.first_name, self.last_name) if part)
        return f"@{self.username}" if self.username else (name or str(self.telegram_user_id))


class Chat(models.Model):
    """A Telegram chat (private, group, supergroup, channel) a bot has seen."""

    company = models.ForeignKey("tenants.Company", on_delete=models.CASCADE, related_name="+")
    bot = models.ForeignKey(Bot, on_delete=models.CASCADE, related_name="chats")
    telegram_chat_id = models.BigIntegerField()
    type = models.CharField(max_length=20)
    title = models.CharField(max_length=255, blank=True)
    username = models.CharField(max_length=64, blank=True)
    is_forum = models.BooleanField(default=False, help_text="A supergroup with topics; replies go to the topic.")
    is_blocked = models.BooleanField(default=False, help_text="The user blocked the bot; nothing is sent.")
    start_param = models.CharField(max_length=64, blank=True, help_text="Deep-link parameter of /start.")
    previous_chat_id = models.BigIntegerField(null=True, blank=True, db_index=True,
                                              help_text="The group's id before it became a supergroup.")
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    objects = CompanyQuerySet.as_manager()

    class Meta:
        constraints = [models.UniqueConstraint(fields=["bot", "telegram_chat_id"], name="chat_unique_bot_chat")]

    def __str__(self) -> str:
        return self.title or self.username or str(self.telegram_chat_id)


class Conversation(models.Model):
    """A run of messages between one chat (or one API/CLI caller) and a bot."""

    class Channel(models.TextChoices):
        TELEGRAM = "telegram", "Telegram"
        CLI = "cli", "Command line"
        API = "api", "API"
        PLAYGROUND = "playground", "Playground"

    company = models.ForeignKey("tenants.Company", on_delete=models.CASCADE, related_name="+")
    bot = models.ForeignKey(Bot, on_delete=models.CASCADE, related_name="conversations")
    chat = models.ForeignKey(Chat, null=True, blank=True, on_delete=models.CASCADE, related_name="conversations")
    thread_id = models.BigIntegerField(null=True, blank=True, help_text="Forum topic (message_thread_id).")
    end_user = models.ForeignKey(TelegramUser, null=True, blank=True, on_delete=models.SET_NULL,
                                 related_name="conversations")
    channel = models.CharField(max_length=12, choices=Channel.choices, default=Channel.TELEGRAM)
    started_at = models.DateTimeField(auto_now_add=True)
    last_message_at = models.DateTimeField(auto_now=True)
    ended_at = models.DateTimeField(null=True, blank=True, help_text="Set by /new or the idle timeout.")

    class Meta:
        indexes = [models.Index(fields=["chat", "thread_id", "-started_at"], name="conversation_chat_thread")]

    objects = CompanyQuerySet.as_manager()


class Message(models.Model):
    """One question and the bot's answer, with sources, tokens and latency."""

    class Status(models.TextChoices):
        ANSWERED = "answered", "Answered"
        NOT_FOUND = "not_found", "Not found in documents"
        LIMIT_REACHED = "limit_reached", "Limit reached"
        NO_SUBSCRIPTION = "no_subscription", "No subscription"
        FAILED = "failed", "Failed"

    company = models.ForeignKey("tenants.Company", on_delete=models.CASCADE, related_name="+")
    bot = models.ForeignKey(Bot, on_delete=models.CASCADE, related_name="messages")
    conversation = models.ForeignKey(Conversation, on_delete=models.CASCADE, related_name="messages")
    update = models.OneToOneField(
        TelegramUpdate, null=True, blank=True, on_delete=models.SET_NULL, related_name="message"
    )
    end_user_id = models.BigIntegerField(null=True, blank=True)
    question = models.TextField()
    answer = models.TextField(blank=True)
    sources = models.JSONField(default=list, blank=True)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.ANSWERED)
    prompt_tokens = models.IntegerField(default=0)
    completion_tokens = models.IntegerField(default=0)
    model = models.CharField(max_length=100, blank=True)
    latency_ms = models.IntegerField(default=0, help_text="From update received (or question asked) to answer ready.")
    delivered_at = models.DateTimeField(null=True, blank=True)
    delivery_error = models.CharField(max_length=300, blank=True,
                                      help_text="Why the answer could not be delivered (blocked, chat gone): "
                                                "not billed, its message given back to the quota.")
    telegram_message_ids = models.JSONField(default=list, blank=True,
                                            help_text="Ids of the Telegram messages that carried the answer.")

    class Feedback(models.IntegerChoices):
        UP = 1, "👍"
        DOWN = -1, "👎"

    feedback = models.SmallIntegerField(choices=Feedback.choices, null=True, blank=True)
    feedback_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    objects = CompanyQuerySet.as_manager()


class KnowledgeGapResolution(models.Model):
    """An answer a company admin wrote once for a group of unanswered (or 👎) questions.

    The answer is stored as a Q&A document (``document``, indexed like any other); the questions it
    covers (``messages``) leave the knowledge-gaps list. See ``bots.knowledge_gaps``.
    """

    company = models.ForeignKey("tenants.Company", on_delete=models.CASCADE, related_name="+")
    question = models.CharField(max_length=300, help_text="The question as the admin titled it.")
    answer = models.TextField()
    document = models.ForeignKey("rag.Document", null=True, blank=True, on_delete=models.SET_NULL,
                                 related_name="gap_resolutions", help_text="The Q&A document holding the answer.")
    messages = models.ManyToManyField(Message, related_name="gap_resolutions",
                                      help_text="The unanswered or 👎 questions this answer covers.")
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)

    objects = CompanyQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return self.question
