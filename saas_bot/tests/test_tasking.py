"""Every Celery task of the project retries only transient errors, and a bounded number of times (issue 12,
item 6; the rule: saas_bot.tasking.TRANSIENT_ERRORS). A task that retried every exception, or retried
without a bound, would turn a bug into an endless retry."""
import pytest
from django.db import IntegrityError, OperationalError

import billing.tasks  # noqa: F401  (the tasks register on import)
import bots.tasks  # noqa: F401
import rag.tasks  # noqa: F401
import saas_bot.api.tasks  # noqa: F401
from saas_bot.celery import app
from saas_bot.errors import ProviderUnavailable, ValidationFailed
from saas_bot.tasking import TASK_MAX_RETRIES, TRANSIENT_ERRORS

OUR_APPS = ("bots.", "rag.", "billing.", "api.")


def _our_tasks():
    tasks = {name: task for name, task in app.tasks.items() if name.startswith(OUR_APPS)}
    # The tasks that retry must be among them, or the checks below would pass on nothing.
    assert {"bots.process_update", "rag.document_ingest", "billing.usage_record"} <= set(tasks)
    return tasks


def test_transient_errors_are_the_database_broker_network_and_provider_outages():
    for transient in (OperationalError, ConnectionError, TimeoutError, ProviderUnavailable):
        assert issubclass(transient, TRANSIENT_ERRORS), transient
    for bug in (Exception, ValueError, KeyError, IntegrityError, ValidationFailed):
        assert not issubclass(bug, TRANSIENT_ERRORS), bug


def test_every_task_autoretries_only_transient_errors_and_a_bounded_number_of_times():
    retrying = []
    for name, task in _our_tasks().items():
        autoretry_for = tuple(getattr(task, "autoretry_for", ()) or ())
        for exc_type in autoretry_for:
            assert issubclass(exc_type, TRANSIENT_ERRORS), f"{name} retries {exc_type.__name__}, not transient"
        if autoretry_for:
            retrying.append(name)
            assert task.max_retries is not None and task.max_retries <= TASK_MAX_RETRIES, name
        assert task.soft_time_limit, f"{name} has no time limit"
    assert sorted(retrying) == ["billing.usage_record", "rag.document_ingest"]


def test_update_processing_retries_its_deferrals_a_bounded_number_of_times():
    # bots.process_update retries only RetryLater (bots/tasks.py), at most max_retries times; a flood-limit
    # deferral is a reserved send slot, not a failure, and is not counted (docs/telegram.md).
    assert bots.tasks.process_update_task.max_retries == 8
    assert not getattr(bots.tasks.process_update_task, "autoretry_for", ())
