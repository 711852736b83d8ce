"""The inbox: receiving Telegram updates, claiming them in the worker, and sweeping the ones left behind.

Receiving stores the raw update (unique per bot and update_id) and enqueues processing after commit; it
parses nothing beyond ``update_id``. Processing claims the row (a heartbeat keeps the claim while it runs),
parses it through the Telegram seam, hands it to ``bots.routing`` and records how it ended. A redelivered
update is acknowledged and never answered twice; a pending update left behind (broker down, worker killed) is
re-enqueued by :func:`inbox_sweep`.
"""
from __future__ import annotations

import datetime as dt
import json
import logging
import os
import re
import socket
import threading
import time

from django.conf import settings
from django.db import connection, connections, transaction
from django.db.models import F, Q
from django.utils import timezone

from billing.quotas import quota_release_message
from bots import telegram as tg
from bots.answers import message_undeliverable
from bots.delivery import RetryLater, Undeliverable
from bots.lifecycle import bot_token_revoked
from bots.models import Message, TelegramUpdate
from bots.ratelimit import intake_priority
from bots.routing import route
from saas_bot.errors import ProviderUnavailable
from saas_bot.tasking import enqueue, enqueue_on_commit

logger = logging.getLogger("saas_bot.bots")


def worker_name() -> str:
    """Who holds a claim: ``host:pid`` of this process (read at each claim: prefork children have their own pid)."""
    return f"{socket.gethostname()}:{os.getpid()}"


def claim_stale_seconds() -> float:
    """A claim not refreshed by its worker's heartbeat for this long belongs to a dead worker (seconds;
    ``TELEGRAM_CLAIM_STALE_SECONDS``)."""
    return float(settings.TELEGRAM_CLAIM_STALE_SECONDS)


# In json.dumps' ASCII output: an escaped backslash (kept), a surrogate pair (kept), or what jsonb refuses:
# U+0000 and a lone surrogate (replaced by U+FFFD). Escaped backslashes are matched first, so "\\\\ud800"
# (a backslash, then the letters "ud800") is left as it is.
_JSONB_REFUSED = re.compile(r"(\\\\)|(\\ud[89ab][0-9a-f]{2}\\ud[c-f][0-9a-f]{2})|\\u(?:0000|d[89a-f][0-9a-f]{2})")


def payload_json(payload: dict) -> str:
    """The update as JSON text PostgreSQL's jsonb accepts (RFC 8259 text, ASCII).

    jsonb refuses U+0000 and unpaired UTF-16 surrogates (``"\\ud800"``; Telegram clients produce them when
    a text is cut inside an emoji); both become U+FFFD, so the update is stored and acknowledged instead of
    failing the INSERT (a 500 Telegram would resend for a day). Everything else is kept as it is.
    """
    text = json.dumps(payload, ensure_ascii=True)
    return _JSONB_REFUSED.sub(lambda m: m.group(1) or m.group(2) or "\\ufffd", text)


_INSERT_UPDATE = """
    INSERT INTO bots_telegramupdate (company_id, bot_id, update_id, payload, status, attempts, error,
                                     received_at, sent_message_ids, locked_by)
    VALUES (%s, %s, %s, %s::jsonb, 'pending', 0, '', now(), '[]'::jsonb, '')
    ON CONFLICT (bot_id, update_id) DO NOTHING
    RETURNING id
"""
# The update and its handoff row in one statement: one round trip, both committed together before the 200.
_INSERT_UPDATE_AND_HANDOFF = """
    WITH stored AS (""" + _INSERT_UPDATE + """)
    INSERT INTO bots_updatehandoff (update_pk, bot_id) SELECT id, %s FROM stored RETURNING update_pk
"""


def inbox_relay_enabled() -> bool:
    """True when received updates are handed to the broker by the relay (``TELEGRAM_INBOX_RELAY``, the default
    with a broker); False in eager mode (no broker) or with the relay switched off (the web process then
    publishes each task itself)."""
    return bool(settings.TELEGRAM_INBOX_RELAY) and not settings.CELERY_TASK_ALWAYS_EAGER


def update_receive(*, bot_id: int, company_id: int, payload: dict) -> bool:
    """Store a webhook update in the inbox and see to its processing.

    With the relay (:func:`inbox_relay_enabled`), one autocommit statement stores the update and its
    :class:`~bots.models.UpdateHandoff` row; the relay publishes the task. Without it, the update is stored
    and the task published once the row is committed (in a caller's transaction: on commit; eager mode: a
    background thread).

    Args:
        payload: the update as Telegram sent it (a dict with an integer ``update_id``).

    Returns:
        True if stored now; False if this (bot, update_id) was stored before (redelivery).

    Raises:
        django.db.Error: the database refused or is away (nothing is acknowledged then).
    """
    from bots.tasks import process_update_task  # bots.tasks imports this module

    params = [company_id, bot_id, payload["update_id"], payload_json(payload)]
    relay = inbox_relay_enabled()
    # One statement in autocommit (one round trip, no BEGIN/COMMIT): when it returns, the row is committed.
    with connection.cursor() as cursor:
        cursor.execute(_INSERT_UPDATE_AND_HANDOFF if relay else _INSERT_UPDATE, params + ([bot_id] if relay else []))
        row = cursor.fetchone()
    if row and not relay:
        enqueue_on_commit(process_update_task, row[0], background=True, priority=intake_priority(bot_id))
    return row is not None


def inbox_relay_batch(*, limit: int = 500) -> int:
    """Hand up to ``limit`` stored updates to the broker: one ``bots.process_update`` task each, oldest first.

    The handoff rows are deleted (``FOR UPDATE SKIP LOCKED``: several relays share the work) in a transaction
    that commits only after every task was published; if the broker fails, the transaction rolls back and the
    rows are published again later. A task published twice is harmless (the worker's claim), so no update is
    lost and none is processed twice. Priorities follow fair queueing (:func:`bots.ratelimit.intake_priorities`).

    Returns:
        How many tasks were published.

    Raises:
        kombu/redis errors (broker away) and django.db.Error; nothing is lost then.
    """
    from collections import Counter

    from bots.ratelimit import intake_priorities
    from bots.tasks import process_update_task  # bots.tasks imports this module
    from saas_bot.celery import app

    with transaction.atomic():
        with connection.cursor() as cursor:
            cursor.execute(
                """
                DELETE FROM bots_updatehandoff WHERE id IN (
                    SELECT id FROM bots_updatehandoff ORDER BY id LIMIT %s FOR UPDATE SKIP LOCKED)
                RETURNING id, update_pk, bot_id
                """, [limit])
            rows = sorted(cursor.fetchall())
        if not rows:
            return 0
        priorities = {bot_id: iter(values) for bot_id, values in
                      intake_priorities(Counter(bot_id for _, _, bot_id in rows)).items()}
        # kombu's publish batch: the LPUSHes go to Redis in one pipeline when the block ends (an error there
        # raises here, and the DELETE rolls back).
        with app.producer_or_acquire() as producer, producer.batch(max_size=limit * 2):
            for _, update_pk, bot_id in rows:
                process_update_task.apply_async(args=(update_pk,), retry=False, producer=producer,
                                                priority=next(priorities[bot_id]))
    return len(rows)


# Seconds between the relay's "still failing" lines during an outage (one traceback at its start).
RELAY_OUTAGE_REPORT_SECONDS = 30.0


def inbox_relay_run(*, stop: threading.Event, idle_seconds: float | None = None, limit: int = 500) -> None:
    """Run the relay until ``stop`` is set: publish batches while there are any, then poll every
    ``idle_seconds`` (``TELEGRAM_INBOX_RELAY_POLL_SECONDS``, default 0.02 s: the delay it adds to an answer).

    Errors (broker or database away) are retried every second; the handoff rows wait meanwhile. An outage is
    logged once with its traceback, then one line every ``RELAY_OUTAGE_REPORT_SECONDS`` while it lasts, and once when publishing works
    again (a broker down for minutes must not write a traceback a second). Closes this thread's database
    connection when it stops.
    """
    idle = settings.TELEGRAM_INBOX_RELAY_POLL_SECONDS if idle_seconds is None else idle_seconds
    failing_since: float | None = None
    last_report = 0.0
    try:
        while not stop.is_set():
            try:
                published = inbox_relay_batch(limit=limit)
            except Exception as exc:
                now = time.monotonic()
                if failing_since is None:
                    failing_since = last_report = now
                    logger.warning("inbox relay: publishing failed; retrying every second", exc_info=True)
                elif now - last_report >= RELAY_OUTAGE_REPORT_SECONDS:
                    last_report = now
                    logger.warning("inbox relay: still failing after %.0f s (%s: %s); retrying every second",
                                   now - failing_since, type(exc).__name__, exc)
                connection.close()
                stop.wait(1.0)
                continue
            if failing_since is not None:
                logger.warning("inbox relay: publishing again after %.0f s", time.monotonic() - failing_since)
                failing_since = None
            if published < limit:
                stop.wait(idle)
    finally:
        connection.close()


def inbox_relay_start() -> tuple[threading.Thread, threading.Event]:
    """Start :func:`inbox_relay_run` in a daemon thread of this process (the answers worker does, on start).

    Returns:
        (thread, stop event): set the event and join the thread to stop it.
    """
    stop = threading.Event()
    thread = threading.Thread(target=inbox_relay_run, kwargs={"stop": stop}, daemon=True, name="inbox-relay")
    thread.start()
    return thread, stop


def _claim(update_pk: int) -> TelegramUpdate | None:
    """Take the update for processing; None if it is done, failed, being processed elsewhere, or must wait.

    A pending update whose ``not_before`` (Telegram's 429, a later send slot) is still ahead is left alone: it
    is taken when due. A claim whose heartbeat stopped ``claim_stale_seconds()`` ago (worker killed) can be
    taken over.
    """
    with connection.cursor() as cursor:
        cursor.execute(
            """
            UPDATE bots_telegramupdate SET status = 'processing', attempts = attempts + 1, locked_at = now(),
                                           not_before = NULL, locked_by = %s
            WHERE id = %s AND ((status = 'pending'
                                AND (not_before IS NULL OR not_before <= clock_timestamp() + interval '1 second'))
                               OR (status = 'processing' AND locked_at < now() - make_interval(secs => %s)))
            RETURNING id
            """,
            [worker_name(), update_pk, claim_stale_seconds()],
        )
        if cursor.fetchone() is None:
            return None
    return TelegramUpdate.objects.select_related("bot", "bot__company").get(id=update_pk)


def _finish(update: TelegramUpdate, status: str, error: str = "") -> None:
    TelegramUpdate.objects.filter(id=update.id).update(status=status, error=error[:2000],
                                                       processed_at=timezone.now(), locked_at=None)


def _release(update: TelegramUpdate, error: str, *, count_attempt: bool = True, wait: float = 0.0,
             slot_at: float | None = None, telegram_wait: bool = False) -> None:
    """Back to pending, with the time it may be processed again (``not_before``) when it must wait.

    A wait for our own send slot is parked until shortly before the slot (the sweep's interval plus a margin),
    so the update is taken in time and then waits the rest as a short countdown; a wait Telegram asked for
    (429) is parked until it ends. The database holds it, so it survives a broker restart.
    """
    changes = dict(status=TelegramUpdate.Status.PENDING, error=error[:2000], locked_at=None, slot_at=slot_at,
                   not_before=None)
    if wait > 0:
        lead = 0.0 if telegram_wait else min(wait, settings.TELEGRAM_INBOX_SWEEP_SECONDS + 5)
        changes["not_before"] = timezone.now() + dt.timedelta(seconds=wait - lead)
    if not count_attempt:
        changes["attempts"] = F("attempts") - 1
    TelegramUpdate.objects.filter(id=update.id).update(**changes)


class _ClaimHeartbeat:
    """While a worker processes an update, refresh ``locked_at`` every ``TELEGRAM_CLAIM_HEARTBEAT_SECONDS``.

    So a long answer (a slow chat model, a flood wait) is never taken over, and a claim whose worker died
    goes stale after ``TELEGRAM_CLAIM_STALE_SECONDS``, not after the longest a task may run. The thread uses
    its own database connection only if it fires (most updates finish first) and closes it; the UPDATE skips
    a row locked by someone else, so it never waits. Only the claim it was started for (same attempt) is
    refreshed.
    """

    def __init__(self, update: TelegramUpdate) -> None:
        self.update_pk, self.attempts = update.id, update.attempts
        self.stop = threading.Event()
        self.thread: threading.Thread | None = None

    def __enter__(self) -> "_ClaimHeartbeat":
        interval = settings.TELEGRAM_CLAIM_HEARTBEAT_SECONDS
        if interval > 0:
            self.thread = threading.Thread(target=self._run, args=(interval,), daemon=True,
                                           name=f"claim-heartbeat-{self.update_pk}")
            self.thread.start()
        return self

    def __exit__(self, *exc_info) -> None:
        self.stop.set()
        if self.thread is not None:
            self.thread.join(timeout=10)

    def _run(self, interval: float) -> None:
        try:
            while not self.stop.wait(interval):
                try:
                    with connections["default"].cursor() as cursor:
                        cursor.execute(
                            """
                            UPDATE bots_telegramupdate SET locked_at = now()
                            WHERE id = (SELECT id FROM bots_telegramupdate WHERE id = %s AND status = 'processing'
                                        AND attempts = %s FOR UPDATE SKIP LOCKED)
                            """, [self.update_pk, self.attempts])
                except Exception:  # the database is away for a moment: the next beat tries again
                    logger.warning("claim heartbeat for update %s failed", self.update_pk, exc_info=True)
        finally:
            connections["default"].close()


def _give_up(update: TelegramUpdate, reason: str) -> None:
    """Never answered: the answer (if computed) is not billed and its message goes back to the quota."""
    key = update.answer_key
    reply = Message.objects.filter(update=update).select_related("company", "conversation").first()
    if reply is not None and reply.delivered_at is None:
        message_undeliverable(message=reply, reason=reason, idempotency_key=key)
    elif reply is None:
        quota_release_message(company=update.bot.company, idempotency_key=key)


def update_process(*, update_pk: int, slot_at: float | None = None) -> str:
    """Process one stored update; returns its final status ("done", "ignored", "failed", or "skipped").

    Telegram's errors are handled as ``bots.telegram`` classifies them (docs/telegram.md).

    Raises:
        RetryLater: a transient failure (a 429 or send slot too far to wait for, Telegram or LLM outage); the
            row is back to pending with ``not_before`` set, and the caller retries after ``countdown``
            seconds (or leaves it to the sweep when that is longer than a task may be scheduled ahead).
    """
    update = _claim(update_pk)
    if update is None:
        return "skipped"
    started = time.monotonic()
    if update.attempts > settings.TELEGRAM_INBOX_MAX_ATTEMPTS:
        reason = f"gave up after {update.attempts - 1} attempts: {update.error}"
        _give_up(update, reason)
        _finish(update, TelegramUpdate.Status.FAILED, reason)
        return TelegramUpdate.Status.FAILED
    try:
        parsed = tg.parse_update(update.payload)
    except Exception as exc:  # any shape Telegram may send that PTB cannot read: record, do not retry
        _finish(update, TelegramUpdate.Status.FAILED, f"could not parse update: {type(exc).__name__}: {exc}")
        return TelegramUpdate.Status.FAILED
    bot = update.bot
    try:
        with _ClaimHeartbeat(update):
            status = route(bot=bot, update=update, parsed=parsed, started=started,
                           slot_at=slot_at if slot_at is not None else update.slot_at)
    except RetryLater as exc:
        _release(update, str(exc), count_attempt=not exc.flood, wait=exc.countdown, slot_at=exc.slot_at,
                 telegram_wait=exc.telegram_wait)
        raise
    except ProviderUnavailable as exc:
        wait = min(60, 2 ** update.attempts)
        _release(update, exc.message, wait=wait)
        raise RetryLater(wait, exc.message) from exc
    except Undeliverable as exc:
        _finish(update, exc.status, str(exc))
        return exc.status
    except tg.TelegramFailed as exc:
        failure = exc.failure
        if failure.kind == tg.TOKEN_REVOKED:
            bot_token_revoked(bot=bot)
            _give_up(update, "bot token revoked (401)")
            _finish(update, TelegramUpdate.Status.FAILED, "bot token revoked (401)")
            return TelegramUpdate.Status.FAILED
        if failure.transient:
            wait = min(60, 2 ** update.attempts)
            _release(update, f"Telegram unreachable: {exc}", wait=wait)
            raise RetryLater(wait, str(exc)) from exc
        logger.warning("update %s: Telegram refused: %s", update.id, exc)
        _give_up(update, f"Telegram refused: {exc}")
        _finish(update, TelegramUpdate.Status.FAILED, f"Telegram refused ({failure.kind}): {exc}")
        return TelegramUpdate.Status.FAILED
    except Exception as exc:
        logger.exception("update %s failed", update.id)
        _finish(update, TelegramUpdate.Status.FAILED, f"{type(exc).__name__}: {exc}")
        return TelegramUpdate.Status.FAILED
    _finish(update, status)
    return status


def inbox_sweep(*, stale_seconds: int | None = None) -> int:
    """Re-enqueue updates left pending (broker down), due after a wait, or whose worker died.

    - pending without a wait: received more than ``stale_seconds`` (``TELEGRAM_INBOX_STALE_SECONDS``) ago;
    - pending with ``not_before`` (Telegram's 429, a later send slot): once it is due, never before;
    - processing: claim not refreshed for ``claim_stale_seconds()`` (its worker stopped beating).

    Runs every ``TELEGRAM_INBOX_SWEEP_SECONDS`` from beat; enqueueing an update twice is harmless (the claim).

    Returns:
        How many updates were re-enqueued.
    """
    from bots.tasks import process_update_task  # bots.tasks imports this module

    stale = stale_seconds if stale_seconds is not None else settings.TELEGRAM_INBOX_STALE_SECONDS
    with connection.cursor() as cursor:
        cursor.execute(
            """
            SELECT id FROM bots_telegramupdate
            WHERE (status = 'pending' AND not_before IS NULL
                   AND received_at < clock_timestamp() - make_interval(secs => %s))
               OR (status = 'pending' AND not_before <= clock_timestamp())
               OR (status = 'processing' AND locked_at < clock_timestamp() - make_interval(secs => %s))
            ORDER BY received_at LIMIT 1000
            """,
            [stale, claim_stale_seconds()],
        )
        ids = [row[0] for row in cursor.fetchall()]
    for update_pk in ids:
        enqueue(process_update_task, update_pk)
    return len(ids)


def updates_retry(*, update_pks: list[int]) -> int:
    """Process updates again (the inbox's "retry" for staff): failed or stuck ones go back to pending,
    their attempts reset, and processing is enqueued after commit. Done and ignored updates are left alone
    (their answer was sent: retrying could answer twice).

    Returns:
        How many updates were queued again.
    """
    from bots.tasks import process_update_task  # bots.tasks imports this module

    stuck_before = timezone.now() - dt.timedelta(seconds=claim_stale_seconds())
    with transaction.atomic():
        queue = (TelegramUpdate.objects.select_for_update().filter(id__in=update_pks)
                 .filter(Q(status__in=[TelegramUpdate.Status.FAILED, TelegramUpdate.Status.PENDING])
                         | Q(status=TelegramUpdate.Status.PROCESSING, locked_at__lt=stuck_before)))
        ids = list(queue.values_list("id", flat=True))
        TelegramUpdate.objects.filter(id__in=ids).update(status=TelegramUpdate.Status.PENDING, attempts=0,
                                                         locked_at=None, processed_at=None, not_before=None)
        for update_pk in ids:
            enqueue_on_commit(process_update_task, update_pk, background=True)
    return len(ids)

