"""Time bounds from what people type."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta, timezone

import pytest

from spanledger import ConfigError
from spanledger._query.timebound import parse_bound

NOW = datetime(2026, 6, 15, 12, 30, 45, 123456, tzinfo=UTC)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (None, None),
        ("now", NOW),
        (" NOW ", NOW),
        ("30s", NOW - timedelta(seconds=30)),
        ("90m", NOW - timedelta(minutes=90)),
        ("24h", NOW - timedelta(hours=24)),
        ("7d", NOW - timedelta(days=7)),
        ("2W", NOW - timedelta(weeks=2)),
        (" 7 d ", NOW - timedelta(days=7)),
        ("2026-11-01", datetime(2026, 11, 1, tzinfo=UTC)),
        ("2026-11-01T09:30", datetime(2026, 11, 1, 9, 30, tzinfo=UTC)),
        ("2026-11-01T09:30:00.250000Z", datetime(2026, 11, 1, 9, 30, 0, 250000, tzinfo=UTC)),
        ("2026-11-01T11:30:00+02:00", datetime(2026, 11, 1, 9, 30, tzinfo=UTC)),
        (date(2026, 11, 1), datetime(2026, 11, 1, tzinfo=UTC)),
        (datetime(2026, 11, 1, 9, 30), datetime(2026, 11, 1, 9, 30, tzinfo=UTC)),
        (
            datetime(2026, 11, 1, 4, 30, tzinfo=timezone(timedelta(hours=-5))),
            datetime(2026, 11, 1, 9, 30, tzinfo=UTC),
        ),
    ],
)
def test_bounds(value: object, expected: datetime | None) -> None:
    parsed = parse_bound(value, now=NOW)  # type: ignore[arg-type]
    assert parsed == expected
    if parsed is not None:
        assert parsed.tzinfo is UTC


@pytest.mark.parametrize("value", ["yesterday", "7x", "-7d", "2026-13-01", "", "d7"])
def test_bad_bounds_raise_config_error(value: str) -> None:
    with pytest.raises(ConfigError, match="bad date"):
        parse_bound(value, now=NOW)


def test_relative_bounds_default_to_the_current_time() -> None:
    before = datetime.now(UTC)
    parsed = parse_bound("1h")
    after = datetime.now(UTC)
    assert parsed is not None
    assert before - timedelta(hours=1) <= parsed <= after - timedelta(hours=1)
