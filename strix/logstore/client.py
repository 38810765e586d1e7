"""Every ClickHouse statement goes through :func:`execute` (native protocol, clickhouse-driver): one
connection per statement, typed errors naming the server, and an optional bound on the wait.
"""

from __future__ import annotations

import contextvars
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime

from clickhouse_driver import Client
from clickhouse_driver import errors as ch_errors
from clickhouse_driver.util.escape import escape_param
from django.conf import settings

from strix.errors import OperatorError


class LogStoreError(OperatorError):
    """ClickHouse could not do what was asked; the message names the server."""


class LogStoreUnavailable(LogStoreError):
    """ClickHouse did not answer: not running, wrong address, or the network is down."""


class LogStoreQueryError(LogStoreError):
    """ClickHouse answered with an error; ``code`` is ClickHouse's error code when it sent one."""

    def __init__(self, message: str, code: int | None = None):
        super().__init__(message)
        self.code = code


class LogStoreTimeout(LogStoreError):
    """A statement did not finish within the bound its caller set (see :func:`bounded`)."""


# Seconds one statement may take, set by :func:`bounded` for callers that must never wait long.
_statement_bound: contextvars.ContextVar[float | None] = contextvars.ContextVar("statement_bound", default=None)


def statement_bound() -> float | None:
    """Seconds a statement may wait here, set by :func:`bounded`; None without a bound."""
    return _statement_bound.get()


@contextmanager
def bounded(seconds: float):
    """Within this block no statement waits longer than ``seconds`` for its answer.

    The client gives up (:class:`LogStoreTimeout`); ClickHouse may still run the statement later, so
    only statements that are harmless whenever they run belong in such a block (the reaper's).
    """
    token = _statement_bound.set(seconds)
    try:
        yield
    finally:
        _statement_bound.reset(token)


@dataclass(frozen=True)
class Node:
    """One ClickHouse server: its native and HTTP ports. Credentials are STRIX_CLICKHOUSE_URL's."""

    host: str
    port: int
    http_port: int

    def __str__(self) -> str:
        return f"{self.host}:{self.port}"


# The server a sequence of statements must reach (a restore's staging table lives on one replica).
_pinned_node: contextvars.ContextVar[Node | None] = contextvars.ContextVar("pinned_node", default=None)


def configured_node() -> Node:
    """The server STRIX_CLICKHOUSE_URL names."""
    cfg = settings.STRIX_CLICKHOUSE
    return Node(cfg["host"], cfg["port"], cfg["http_port"])


def current_node() -> Node:
    """The server statements go to: the one :func:`pinned_to` set, else STRIX_CLICKHOUSE_URL's."""
    return _pinned_node.get() or configured_node()


@contextmanager
def pinned_to(node: Node):
    """Within this block every statement without a node of its own goes to ``node``."""
    token = _pinned_node.set(node)
    try:
        yield node
    finally:
        _pinned_node.reset(token)


def server_address(node: Node | None = None) -> str:
    return str(node or current_node())


def database() -> str:
    return settings.STRIX_CLICKHOUSE_DATABASE


# Sent with every statement. Replicated tables drop an insert block identical to a recent one
# (even one whose rows were deleted since): a restore or a fence must never vanish that way.
SERVER_SETTINGS = {"insert_deduplicate": 0}


def connect(database_name: str | None = None, node: Node | None = None) -> Client:
    cfg = settings.STRIX_CLICKHOUSE
    node = node or current_node()
    return Client(
        host=node.host,
        port=node.port,
        user=cfg["user"],
        password=cfg["password"],
        secure=cfg["secure"],
        database=database_name or "default",
        connect_timeout=5,
        send_receive_timeout=_statement_bound.get() or 600,
        settings={"use_client_time_zone": False, **SERVER_SETTINGS},
    )


def translate_error(e: Exception, node: Node | None = None) -> LogStoreError:
    where = f"ClickHouse at {server_address(node)}"
    bound = _statement_bound.get()
    if bound and isinstance(e, (ch_errors.SocketTimeoutError, TimeoutError)):
        return LogStoreTimeout(f"{where} did not answer within {bound:g}s; the statement was left to finish later.")
    if isinstance(e, (ch_errors.NetworkError, ch_errors.SocketTimeoutError, OSError, EOFError)):
        return LogStoreUnavailable(
            f"{where} is unreachable ({e.__class__.__name__}: {str(e).strip() or 'no answer'}); "
            "check that it is running and that STRIX_CLICKHOUSE_URL points to it."
        )
    message = getattr(e, "message", None) or str(e)
    first_line = message.strip().splitlines()[0] if message.strip() else e.__class__.__name__
    return LogStoreQueryError(f"{where} refused the query: {first_line}", getattr(e, "code", None))


def execute(query: str, params: dict | None = None, node: Node | None = None, **kwargs):
    """Run one statement and return its result; every ClickHouse call goes through here.

    Values travel only in ``params`` (``%(name)s`` in the statement), escaped by the driver; statement
    text never holds a value of its own, so nothing in a value can change the statement. A ``dict``
    passed for an INSERT's rows is the driver's business and is not touched.
    """
    if isinstance(params, dict):
        params = plain_params(params, node)
    client = connect(node=node)
    try:
        return client.execute(query, params, **kwargs)
    except LogStoreError:
        raise
    except Exception as e:
        raise translate_error(e, node) from e
    finally:
        client.disconnect()


def server_version(node: Node | None = None) -> tuple[int, ...]:
    """The server's version, asked once per process and server address."""
    address = server_address(node)
    if address not in _versions:
        (version,) = execute("SELECT version()", node=node)[0]
        _versions[address] = tuple(int(part) for part in version.split(".") if part.isdigit())
    return _versions[address]


_versions: dict[str, tuple[int, ...]] = {}


def ping() -> None:
    """Raise :class:`LogStoreUnavailable` unless ClickHouse answers."""
    execute("SELECT 1")


def utc(value: datetime) -> datetime:
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def utc_text(value: datetime, milliseconds: bool = False) -> str:
    """A timestamp as ClickHouse reads it for a ``DateTime('UTC')`` or ``DateTime64(3, 'UTC')`` column,
    in UTC: whole seconds, and with ``milliseconds`` its milliseconds when it has some.

    Servers before 20.1 refuse a fraction; later ones keep it, so that a DateTime64 bound of
    12:00:00.457 does not become 12:00:00 (a DateTime column still compares in whole seconds).
    Passed as text, so that neither the driver nor the server converts it to their own time zone."""
    value = utc(value)
    text = f"{value:%Y-%m-%d %H:%M:%S}"
    return f"{text}.{value.microsecond // 1000:03d}" if milliseconds and value.microsecond >= 1000 else text


def plain_params(params: dict | None, node: Node | None = None) -> dict | None:
    """Parameters as the statement reads them on ``node``: timestamps as UTC text (see :func:`utc_text`)."""
    if not params:
        return params
    if not any(isinstance(value, datetime) for value in params.values()):
        return params
    milliseconds = server_version(node) >= (20, 1)  # DateTime64 (see schema.has_datetime64)
    return {
        name: utc_text(value, milliseconds) if isinstance(value, datetime) else value for name, value in params.items()
    }


def bind(query: str, params: dict | None = None, node: Node | None = None) -> str:
    """The statement with its ``%(name)s`` parameters substituted as escaped literals, as the native
    driver does it: for the HTTP interface, where ClickHouse 18.16 takes no query parameters."""
    if not params:
        return query
    return query % {name: escape_param(value, None) for name, value in plain_params(params, node).items()}
