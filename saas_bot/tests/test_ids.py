"""parse_id: ids typed by users are plain ASCII digits that fit a bigint, or nothing."""
import pytest

from saas_bot.ids import parse_id


@pytest.mark.parametrize("raw, expected", [
    ("42", 42), ("007", 7), (42, 42), ("9" * 18, int("9" * 18)),
])
def test_plain_ascii_digits_are_ids(raw, expected):
    assert parse_id(raw) == expected


@pytest.mark.parametrize("raw", [
    "¹",            # "¹".isdigit() is True, int("¹") raises ValueError
    "٣",            # an Arabic-Indic digit: int("٣") == 3, but no id is typed so
    "１２",          # full-width digits
    "9" * 19,       # past what always fits a bigint
    "", " 1", "1 ", "-1", "+1", "1.0", "1e3", "0x1", "1_000", None,
])
def test_anything_else_is_not_an_id(raw):
    assert parse_id(raw) is None
