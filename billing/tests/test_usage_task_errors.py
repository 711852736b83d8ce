"""billing.usage_record retries transient errors only, a bounded number of times; anything else is recorded
on the outbox row, left by the sweep and reported by usage_check (issue 12)."""
import pytest
from django.core.management import CommandError, call_command
from django.db import OperationalError

from billing.ledger import usage_sweep
from billing.models import PendingUsage
from billing.tasks import usage_record_task
from saas_bot.errors import ProviderUnavailable
from saas_bot.tasking import TASK_MAX_RETRIES, TRANSIENT_ERRORS

pytestmark = pytest.mark.django_db


def test_only_transient_errors_are_retried_and_a_bounded_number_of_times():
    assert usage_record_task.autoretry_for == TRANSIENT_ERRORS
    assert usage_record_task.max_retries == TASK_MAX_RETRIES is not None
    assert issubclass(OperationalError, TRANSIENT_ERRORS) and issubclass(ProviderUnavailable, TRANSIENT_ERRORS)
    assert not issubclass(KeyError, TRANSIENT_ERRORS) and not issubclass(ValueError, TRANSIENT_ERRORS)


def test_a_bug_is_recorded_on_the_row_left_by_the_sweep_and_reported(company, capsys):
    PendingUsage.objects.create(idempotency_key="broken:1", payload={"company_id": company.id})  # no "model"
    with pytest.raises(KeyError):
        usage_record_task.apply(args=["broken:1"])
    row = PendingUsage.objects.get(idempotency_key="broken:1")
    assert row.last_error.startswith("KeyError")
    assert usage_sweep(older_than_seconds=0) == 0
    with pytest.raises(CommandError, match="could not be recorded"):
        call_command("usage_check")
    assert "broken:1: not recorded: KeyError" in capsys.readouterr().out
    # After the fix, --retry-failed sends it again (here it fails again, and is recorded again).
    with pytest.raises(CommandError):
        call_command("usage_check", "--retry-failed")
    assert PendingUsage.objects.get(idempotency_key="broken:1").last_error.startswith("KeyError")
