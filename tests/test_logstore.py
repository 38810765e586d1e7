from datetime import UTC, datetime, timedelta

import pytest
from django.conf import settings

from strix import logstore


def _row(ts, log_id, raw, fields='{"k": "v"}'):
    return ts, log_id, raw, fields, ts + timedelta(seconds=1)


def test_schema_function_creates_logs_table_with_types_for_this_server():
    logstore.ensure_schema()  # idempotent on an existing table
    columns = {row[0]: row[1] for row in logstore.execute(f"DESCRIBE TABLE {logstore.database()}.logs")}
    expected_ts = logstore.timestamp_type(logstore.server_version())
    assert list(columns) == list(logstore.LOG_COLUMNS)
    assert columns["timestamp"].replace(" ", "") == expected_ts.replace(" ", "")
    assert columns["ingest_timestamp"] == columns["timestamp"]
    assert columns["raw_log"] == "String"


def test_timestamp_type_follows_server_version():
    assert logstore.timestamp_type((18, 16, 1)) == "DateTime('UTC')"
    assert logstore.timestamp_type((24, 8, 4, 1)) == "DateTime64(3, 'UTC')"


def test_log_store_round_trips_unicode_newlines_and_large_values(make_fractal):
    fractal = make_fractal()
    base = datetime(2026, 3, 1, 12, 0, 0, tzinfo=UTC)
    large = "x" * 2_000_000 + "\n" + "é" * 1000
    rows = [
        _row(base, "a", "héllo wörld — 分析 🚨", '{"user": "zoë"}'),
        _row(base + timedelta(seconds=1), "b", "line one\nline two\r\n\ttabbed\x00nul"),
        _row(base + timedelta(seconds=2), "c", large),
        _row(base + timedelta(seconds=3), "d", "quotes \" and \\ backslashes '"),
    ]
    assert logstore.insert_rows(str(fractal.id), rows) == 4

    back = list(logstore.stream_rows(str(fractal.id), block_size=2))
    assert [(r[1], r[2]) for r in back] == [(row[2], row[1]) for row in rows]
    assert [r[3] for r in back] == [row[3] for row in rows]
    assert [r[0].replace(tzinfo=UTC) if r[0].tzinfo is None else r[0] for r in back] == [row[0] for row in rows]


def test_count_window_and_delete_are_scoped_to_one_fractal(make_fractal):
    mine, other = make_fractal(), make_fractal()
    base = datetime(2026, 1, 1, tzinfo=UTC)
    logstore.insert_rows(str(mine.id), [_row(base + timedelta(days=d), f"m{d}", "x") for d in range(10)])
    logstore.insert_rows(str(other.id), [_row(base + timedelta(days=d), f"o{d}", "y") for d in range(10)])

    assert logstore.count_rows(str(mine.id), start=base + timedelta(days=5)) == 5
    logstore.record_fence(str(mine.id), 7)
    logstore.delete_window(str(mine.id), 7, base, base + timedelta(days=7), ingested_before=base + timedelta(days=99))
    assert logstore.count_rows(str(mine.id)) == 3
    logstore.delete_rows(str(mine.id), 7)
    assert logstore.count_rows(str(mine.id)) == 0
    assert logstore.count_rows(str(other.id)) == 10


def test_a_delete_under_a_superseded_fence_deletes_nothing_and_the_current_owner_deletes(make_fractal):
    fractal = make_fractal()
    base = datetime(2026, 1, 1, tzinfo=UTC)
    logstore.insert_rows(str(fractal.id), [_row(base + timedelta(hours=h), f"r{h}", "x") for h in range(24)])
    logstore.record_fence(str(fractal.id), 5)
    logstore.record_fence(str(fractal.id), 6)  # a takeover: 5 is stale from now on

    logstore.delete_rows(str(fractal.id), 5)
    logstore.delete_window(str(fractal.id), 5, base, base + timedelta(days=1), ingested_before=base + timedelta(days=9))
    assert logstore.count_rows(str(fractal.id)) == 24
    assert logstore.current_fence(str(fractal.id)) == 6
    logstore.delete_rows(str(fractal.id), 6)
    assert logstore.count_rows(str(fractal.id)) == 0


def test_unreachable_server_raises_one_typed_error_naming_the_address(monkeypatch):
    monkeypatch.setitem(settings.STRIX_CLICKHOUSE, "port", 1)
    with pytest.raises(logstore.LogStoreUnavailable) as caught:
        logstore.count_rows("whatever")
    assert "ClickHouse at 127.0.0.1:1 is unreachable" in str(caught.value)
    assert "\n" not in str(caught.value)


def test_query_error_is_typed_and_names_the_server():
    with pytest.raises(logstore.LogStoreQueryError) as caught:
        logstore.execute("SELECT no_such_column FROM system.one")
    assert str(caught.value).startswith(f"ClickHouse at {logstore.server_address()} refused the query")
