"""Realistic demo log rows: syslog lines, JSON application events and Windows-style security events."""

from __future__ import annotations

import json
import random
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

HOSTS = ["web-01", "web-02", "db-01", "vpn-gw", "mail-01", "fw-edge"]
USERS = ["root", "admin", "alice", "bob", "josé", "müller", "svc_backup", "zoë", "分析员"]
PATHS = ["/api/v1/login", "/api/v1/search", "/static/app.js", "/admin/", "/health", "/api/v1/export"]
PROGRAMS = ["sshd", "sudo", "cron", "postfix/smtpd", "kernel", "systemd"]
COMPUTERS = ["WS-0142", "WS-0077", "DC-01", "FILESRV-02"]
EVENT_IDS = {
    4624: "An account was successfully logged on.",
    4625: "An account failed to log on.",
    4688: "A new process has been created.",
    4720: "A user account was created.",
}


def _ip(rng: random.Random) -> str:
    return f"10.{rng.randrange(256)}.{rng.randrange(256)}.{rng.randrange(1, 255)}"


def _syslog(rng: random.Random, ts: datetime) -> tuple[str, dict]:
    host, program, user, ip = rng.choice(HOSTS), rng.choice(PROGRAMS), rng.choice(USERS), _ip(rng)
    pid = rng.randrange(100, 65000)
    outcome = rng.choice(["Failed password", "Accepted publickey", "Invalid user"])
    port = rng.randrange(1024, 65535)
    raw = f"<38>{ts:%b %d %H:%M:%S} {host} {program}[{pid}]: {outcome} for {user} from {ip} port {port} ssh2"
    return raw, {"host": host, "program": program, "pid": pid, "user": user, "src_ip": ip, "outcome": outcome}


def _json_event(rng: random.Random, ts: datetime) -> tuple[str, dict]:
    event = {
        "event": "http_request",
        "time": ts.isoformat(timespec="milliseconds"),
        "method": rng.choice(["GET", "GET", "POST", "PUT", "DELETE"]),
        "path": rng.choice(PATHS),
        "status": rng.choice([200, 200, 200, 201, 302, 401, 403, 404, 500]),
        "latency_ms": round(rng.expovariate(1 / 40), 2),
        "client_ip": _ip(rng),
        "user": rng.choice(USERS),
        "user_agent": "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36",
    }
    return json.dumps(event, ensure_ascii=False), event


def _windows_event(rng: random.Random, ts: datetime) -> tuple[str, dict]:
    event_id = rng.choice(list(EVENT_IDS))
    computer, user = rng.choice(COMPUTERS), rng.choice(USERS)
    logon_type = rng.choice([2, 3, 10])
    raw = (
        f"{ts:%Y-%m-%dT%H:%M:%S.%f}Z EventID={event_id} Channel=Security Computer={computer}\r\n"
        f"{EVENT_IDS[event_id]}\r\n\r\nSubject:\r\n\tAccount Name:\t{user}\r\n\tLogon Type:\t{logon_type}\r\n"
        f"Network Information:\r\n\tSource Network Address:\t{_ip(rng)}"
    )
    fields = {
        "EventID": event_id,
        "Channel": "Security",
        "Computer": computer,
        "TargetUserName": user,
        "LogonType": logon_type,
    }
    return raw, fields


GENERATORS = (_syslog, _json_event, _windows_event)


def generate_rows(count: int, days: float = 7, seed: int | None = None, now: datetime | None = None) -> Iterator[tuple]:
    """Yield ``(timestamp, log_id, raw_log, fields_json, ingest_timestamp)`` spread over ``days``."""
    rng = random.Random(seed)
    end = now or datetime.now(UTC)
    span_ms = max(int(days * 86_400_000), 1)
    for _ in range(count):
        ts = end - timedelta(milliseconds=rng.randrange(span_ms))
        raw, fields = rng.choice(GENERATORS)(rng, ts)
        ingest = ts + timedelta(milliseconds=rng.randrange(50, 5000))
        yield ts, f"{rng.getrandbits(128):032x}", raw, json.dumps(fields, ensure_ascii=False), ingest
