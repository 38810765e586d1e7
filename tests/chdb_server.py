"""ClickHouse 26 in this process (the ``chdb`` package), standing in for the log store's server.

Production runs a current ClickHouse (the Compose file ships 24.8); the machine the tests run on has
18.16 only. So that the statements strix.logstore builds for servers >= 20.1 (DateTime64, millisecond
bounds, row hashes) run somewhere, this module routes them to chdb's engine: the transport is replaced
(native protocol and HTTP), never the statements. Parameters are bound by the product's own
``bind`` (the driver's escaping), as for the HTTP interface. Settings a statement is sent with are
applied with SET first, so that a setting this release does not know is an error here too.
"""

from __future__ import annotations

import io
import re
import threading
from datetime import datetime
from pathlib import Path

from chdb import session as chdb_session
from clickhouse_driver.util.escape import escape_param
from django.conf import settings

from strix import logstore
from strix.logstore import client, cluster, fences, http_client, inserts, records, rows, schema, staging
from strix.logstore.client import LogStoreQueryError, Node, bind, utc_text

NODE = Node("chdb.in-process", 26, 26)
_FORMAT = re.compile(r"\s+FORMAT\s+JSONEachRow\s*$", re.IGNORECASE)
_RETURNS_ROWS = re.compile(r"^\s*(SELECT|WITH|DESCRIBE|SHOW|EXISTS)\b", re.IGNORECASE)


class ChdbServer:
    def __init__(self, path: Path):
        self.session = chdb_session.Session(str(path))
        self.lock = threading.Lock()
        self.statements: list[str] = []

    def close(self) -> None:
        self.session.close()

    # --- the engine ---------------------------------------------------------------------------
    def _run(self, sql: str, fmt: str, query_settings: dict | None = None):
        with self.lock:
            try:
                for name, value in (query_settings or {}).items():
                    self.statements.append(f"SET {name} = {escape_param(value, None)}")
                    self.session.query(self.statements[-1])
                self.statements.append(sql)
                return self.session.query(sql, fmt)
            except Exception as e:  # chdb raises RuntimeError-like errors with ClickHouse's message
                first = str(e).strip().splitlines()[0] if str(e).strip() else e.__class__.__name__
                raise LogStoreQueryError(f"ClickHouse at {NODE} refused the query: {first}") from e

    # --- the native protocol (strix.logstore.client.execute and connect) -------------------------
    def execute(self, query: str, params=None, node=None, settings=None, **kwargs):
        if isinstance(params, list | tuple):  # INSERT … VALUES with rows
            values = ", ".join("(" + ", ".join(_literal(value) for value in row) + ")" for row in params)
            sql = f"{query} {values}"
        else:
            sql = bind(query, params, NODE)
        if not _RETURNS_ROWS.match(sql):
            self._run(sql, "CSV", settings)
            return []
        table = self._run(sql, "ArrowTable", settings)
        columns = [column.to_pylist() for column in table.columns]
        return [tuple(row) for row in zip(*columns, strict=True)] if columns else []

    def connect(self, database_name=None, node=None):
        server = self

        class Connection:
            def execute_iter(self, query, params=None, settings=None):
                yield from server.execute(query, params)

            def disconnect(self):
                pass

        return Connection()

    # --- the HTTP interface (strix.logstore.http_client.request) -------------------------------
    def request(self, method, query, body=None, on_connect=None, timeout=600, node=None, **extra_settings):
        connection = _Connection()
        if on_connect is not None:
            on_connect(connection)
        query_settings = {**client.SERVER_SETTINGS, **extra_settings}
        if body is None:
            result = self._run(_FORMAT.sub("", query), "JSONEachRow", query_settings)
            return connection, _Response(result.bytes())
        payload = b"".join(bytes(buffer) for chunk in body for buffer in chunk)
        if payload.strip():  # an empty INSERT over HTTP inserts nothing; chdb's own interface refuses it
            self._run(f"{query} {payload.decode('utf-8')}", "CSV", query_settings)
        return connection, _Response(b"")

    def send(self, *args, **kwargs) -> _Sent:
        """http_client.send: here the query runs at once, and its answer waits to be asked for."""
        return _Sent(self.request(*args, **kwargs))

    # --- pointing strix.logstore at it ----------------------------------------------------------
    def install(self, monkeypatch, database: str) -> None:
        for module in (logstore, client, cluster, fences, inserts, rows, schema, staging):
            monkeypatch.setattr(module, "execute", self.execute)
        monkeypatch.setattr(rows, "connect", self.connect)
        monkeypatch.setattr(inserts, "request", self.request)
        monkeypatch.setattr(records, "send", self.send)
        monkeypatch.setattr(http_client, "request", self.request)
        monkeypatch.setattr(
            settings, "STRIX_CLICKHOUSE", {**settings.STRIX_CLICKHOUSE, "host": NODE.host, "port": NODE.port}
        )
        monkeypatch.setattr(settings, "STRIX_CLICKHOUSE_DATABASE", database)
        monkeypatch.setattr(settings, "STRIX_CLICKHOUSE_CLUSTER", {**settings.STRIX_CLICKHOUSE_CLUSTER, "name": ""})
        monkeypatch.setattr(client, "_versions", {})


def _literal(value) -> str:
    if isinstance(value, datetime):
        return f"'{utc_text(value, milliseconds=True)}'"
    return str(escape_param(value, None))


class _Sent:
    def __init__(self, answer: tuple):
        self.answer, self.node = answer, NODE

    def response(self) -> tuple:
        return self.answer

    def close(self) -> None:
        pass


class _Connection:
    sock = None

    def close(self) -> None:
        pass


class _Response:
    chunked = False
    status = 200

    def __init__(self, data: bytes):
        self._data = io.BytesIO(data)

    def read(self, size: int = -1) -> bytes:
        return self._data.read(size)
