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


def test_one_mutation_deletes_several_fractals_windows_each_only_under_its_own_fence(make_fractal):
    """Retention batches fractals into one mutation; a stale owner's share of it must still match nothing."""
    current, stale, bystander = make_fractal(), make_fractal(), make_fractal()
    base = datetime(2026, 1, 1, tzinfo=UTC)
    for fractal in (current, stale, bystander):
        rows = [_row(base + timedelta(days=d, hours=1), f"{fractal.id}-{d}", "x") for d in range(6)]
        logstore.insert_rows(str(fractal.id), rows)
    logstore.record_fence(str(current.id), 3)
    logstore.record_fence(str(stale.id), 4)
    logstore.record_fence(str(stale.id), 5)  # taken over: fence 4 is stale from now on
    later = base + timedelta(days=99)
    deletions = [
        logstore.Deletion(
            str(current.id), 3, ((base, base + timedelta(days=2)), (base + timedelta(days=4), later)), later
        ),
        logstore.Deletion(str(stale.id), 4, ((base, later),), later),
    ]
    assert logstore.delete_windows(deletions) == 1
    assert [row[2] for row in logstore.stream_rows(str(current.id))] == [f"{current.id}-2", f"{current.id}-3"]
    assert logstore.count_rows(str(stale.id)) == 6
    assert logstore.count_rows(str(bystander.id)) == 6


def test_deletions_too_long_for_one_statement_are_split_and_all_done(make_fractal, monkeypatch):
    from strix.logstore import fences

    fractals = [make_fractal() for _ in range(3)]
    base = datetime(2026, 1, 1, tzinfo=UTC)
    for number, fractal in enumerate(fractals):
        logstore.insert_rows(str(fractal.id), [_row(base + timedelta(hours=h), f"{number}-{h}", "x") for h in range(4)])
        logstore.record_fence(str(fractal.id), 1)
    window = ((base, base + timedelta(hours=2)),)
    deletions = [logstore.Deletion(str(f.id), 1, window, base + timedelta(days=9)) for f in fractals]
    monkeypatch.setattr(fences, "MAX_DELETE_STATEMENT", len(deletions[0].condition("0")[0]) + 1)
    assert logstore.delete_windows(deletions) == 3
    assert [logstore.count_rows(str(f.id)) for f in fractals] == [2, 2, 2]


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


def test_a_deletion_that_does_not_finish_is_reported_while_it_is_waited_for_then_times_out(
    make_fractal, monkeypatch, caplog
):
    """A wait for a mutation is bounded and never silent: a deletion ClickHouse holds back (merges
    stopped on the table, as a stuck replica would) is named in the log while it is waited for."""
    from strix.logstore import fences

    fractal = make_fractal()
    base = datetime(2026, 1, 1, tzinfo=UTC)
    logstore.insert_rows(str(fractal.id), [_row(base + timedelta(hours=h), f"r{h}", "x") for h in range(24)])
    logstore.record_fence(str(fractal.id), 1)
    monkeypatch.setattr(fences, "MUTATION_WAIT_REPORT_SECONDS", 0.5)
    table = f"{logstore.database()}.{logstore.LOGS_TABLE}"
    logstore.execute(f"SYSTEM STOP MERGES {table}")
    try:
        with caplog.at_level("WARNING", logger="strix.logstore.fences"):
            with pytest.raises(logstore.LogStoreTimeout, match="did not finish deleting rows within 2s"):
                logstore.delete_rows(str(fractal.id), 1, timeout=2)
    finally:
        logstore.execute(f"SYSTEM START MERGES {table}")
    reports = [r.getMessage() for r in caplog.records if "still waiting" in r.getMessage()]
    assert 2 <= len(reports) <= 4, reports
    assert "to finish deleting rows of logs (1 mutations pending" in reports[0]
    logstore.wait_for_mutations(logstore.LOGS_TABLE, timeout=60)  # held back only: it runs now
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


@pytest.mark.parametrize("source_counts", [False, True], ids=["counted here", "counted by the source"])
def test_a_rejected_record_is_named_by_its_line_in_the_whole_stream(source_counts):
    """Records are dealt to two INSERTs in pieces cut mid-line by the source; the error still names the
    line an operator would find with ``sed -n 37p``."""
    lines = [
        f'{{"timestamp":"2026-01-01 00:00:{n % 60:02d}","raw_log":"r{n}","log_id":"id{n}","fields":"{{}}",'
        f'"ingest_timestamp":"2026-01-01 00:00:00"}}\n'
        for n in range(1, 61)
    ]
    lines[36] = lines[36].replace("2026-01-01 00:00:37", "not a time")
    stream = "".join(lines).encode()
    counted = [0]

    def blocks():
        for start in range(0, len(stream), 700):  # about five lines a block, cut anywhere
            block = stream[start : start + 700]
            counted[0] += block.count(b"\n")
            yield block

    logstore.drop_table("rejects")
    logstore.create_staging_table("rejects", "f")
    try:
        with pytest.raises(logstore.RecordRejected) as rejected:
            logstore.insert_records("rejects", blocks(), rows_counted=(lambda: counted[0]) if source_counts else None)
    finally:
        logstore.drop_table("rejects")
    assert rejected.value.line == 37
