"""Benchmarks of the security event log (not part of the test suite).

- ``verify`` over 1,000,000 records in a temporary SQLite file (target: < 30 s);
- the logging overhead per request: median and p99 of a Flask test-client request to an endpoint
  that records one event against an identical endpoint that does not, interleaved in one run
  (target: < 1 ms median).

Run: ``.venv/bin/python -m tests.bench.bench_security_log [--records N] [--requests N]
[--database-url URL]`` (the URL is for the overhead part; default: a temporary SQLite file).
"""

from __future__ import annotations

import argparse
import random
import sqlite3
import statistics
import tempfile
import time
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import select

from portal import create_app, db, migrate
from portal.models.events import CANONICAL_JSON
from portal.services.access import Actor, Role
from portal.services.events import (
    CANONICAL_FIELDS,
    GENESIS_HASH,
    EventTag,
    RequestInfo,
    canonical,
    chain_hash,
    format_ts,
    record_event,
)
from portal.services.events_verify import sign, verify

KEY = b"bench-checkpoint-key-0123456789abcdef"
TAGS = list(EventTag)
ROLES = ["member", "producer", "steward", "admin", None]
INSERT_SQL = (
    "INSERT INTO security_event (seq, ts, tag, outcome, severity, actor_id, actor_role,"
    " actor_org, src_ip, user_agent, request_id, method, path, status, object_type, object_id,"
    " details, prev_hash, hash) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
)


def _variants(count: int) -> list[dict[str, Any]]:
    """Varied record contents, drawn once; the build cycles through them."""
    rng = random.Random(6171)  # noqa: S311 - fixture data
    variants = []
    for i in range(count):
        role = rng.choice(ROLES)
        variants.append(
            {
                "tag": rng.choice(TAGS).value,
                "outcome": "failure" if i % 9 == 0 else "success",
                "severity": "warning" if i % 9 == 0 else "info",
                "actor_id": f"user-{rng.randrange(500)}" if role else None,
                "actor_role": role,
                "actor_org": rng.choice(["diskominfo", "dinkes", "disdukcapil", None]),
                "src_ip": f"10.{rng.randrange(256)}.{rng.randrange(256)}.{rng.randrange(256)}",
                "user_agent": "Mozilla/5.0 (X11; Linux x86_64) Firefox/128.0",
                "method": rng.choice(["GET", "POST"]),
                "path": f"/dataset/data-{rng.randrange(2000)}/resource/{rng.randrange(10)}",
                "status": rng.choice([200, 302, 401, 403]),
                "object_type": "dataset",
                "object_id": str(rng.randrange(2000)),
                "details": CANONICAL_JSON.encode({"count": rng.randrange(100), "reason": "bench"}),
            }
        )
    return variants


def build_log(path: Path, n: int, *, checkpoint_every: int = 100_000) -> None:
    """Fill a migrated SQLite file with ``n`` chained events, fast (plain sqlite3, executemany)."""
    variants = _variants(4099)
    start = datetime(2026, 1, 1)  # naive UTC, stored the way SQLAlchemy stores it on SQLite
    prev = GENESIS_HASH
    conn = sqlite3.connect(path)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=OFF")
    batch: list[tuple[Any, ...]] = []
    checkpoints: list[tuple[int, str, str, str]] = []
    for seq in range(1, n + 1):
        stored_ts = (start + timedelta(milliseconds=seq * 37)).isoformat(" ", "microseconds")
        record = {
            **variants[seq % len(variants)],
            "seq": seq,
            "ts": format_ts(stored_ts),
            "request_id": f"{seq * 2654435761 % 2**64:016x}",
        }
        digest = chain_hash(prev, canonical(record))
        values = [record[name] for name in CANONICAL_FIELDS]
        values[1] = stored_ts
        batch.append((*values, prev, digest))
        prev = digest
        if seq % checkpoint_every == 0:
            checkpoints.append((seq, digest, sign(KEY, seq, digest), stored_ts))
        if len(batch) >= 50_000:
            conn.executemany(INSERT_SQL, batch)
            batch.clear()
    if batch:
        conn.executemany(INSERT_SQL, batch)
    conn.executemany(
        "INSERT INTO security_checkpoint (seq, hash, hmac, created_at) VALUES (?, ?, ?, ?)",
        checkpoints,
    )
    conn.execute("UPDATE security_log_head SET seq = ?, hash = ? WHERE id = 1", (n, prev))
    conn.commit()
    conn.close()


def bench_verify(n: int = 1_000_000) -> dict[str, float]:
    """Build ``n`` records, then time :func:`verify` over them."""
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "log.sqlite"
        engine = db.make_engine(f"sqlite:///{path}")
        migrate.upgrade(engine)
        engine.dispose()
        started = time.perf_counter()
        build_log(path, n)
        built = time.perf_counter() - started
        app = _app(f"sqlite:///{path}", tmp)
        with app.app_context(), db.transaction() as session:
            started, cpu = time.perf_counter(), time.process_time()
            result = verify(session, KEY)
            elapsed, cpu = time.perf_counter() - started, time.process_time() - cpu
        app.extensions["onedata.engine"].dispose()
    assert result.ok and result.records == n, str(result)
    return {
        "records": n,
        "build_s": built,
        "verify_s": elapsed,
        "verify_cpu_s": cpu,
        "per_record_us": elapsed / n * 1e6,
    }


def _app(url: str, instance: str) -> Any:
    return create_app(
        {
            "TESTING": True,
            "SECRET_KEY": "bench-" + "x" * 40,
            "DATABASE_URL": url,
            "INSTANCE_PATH": str(Path(instance) / "instance"),
        }
    )


def bench_overhead(requests: int = 3000, database_url: str | None = None) -> dict[str, float]:
    """Median and p99 (ms) of a logged and an unlogged endpoint, requests interleaved."""
    with tempfile.TemporaryDirectory() as tmp:
        url = database_url or f"sqlite:///{Path(tmp) / 'overhead.sqlite'}"
        if database_url is None:
            engine = db.make_engine(url)
            migrate.upgrade(engine)
            engine.dispose()
        app = _app(url, tmp)
        actor = Actor(id="user-1", role=Role.STEWARD)

        def work(logged: bool) -> str:
            from flask import request

            session = db.get_session()
            session.execute(select(1))  # what any request does: touch the database
            if logged:
                record_event(
                    session,
                    EventTag.DATA_DATASET_DOWNLOAD,
                    actor=actor,
                    target=("dataset", "harga-pangan"),
                    details={"format": "csv"},
                    request=RequestInfo(
                        ip=request.remote_addr,
                        user_agent=request.user_agent.string,
                        request_id="bench",
                        method=request.method,
                        path=request.path,
                        status=200,
                    ),
                )
            return "ok"

        app.add_url_rule("/bench/logged", "bench_logged", lambda: work(True))
        app.add_url_rule("/bench/plain", "bench_plain", lambda: work(False))
        client = app.test_client()
        times: dict[str, list[float]] = {"logged": [], "plain": []}
        cpu: dict[str, list[float]] = {"logged": [], "plain": []}
        for i in range(requests * 2 + 200):
            name = "logged" if i % 2 else "plain"
            started, started_cpu = time.perf_counter(), time.thread_time()
            response = client.get(f"/bench/{name}", headers={"User-Agent": "bench/1.0"})
            elapsed = (time.perf_counter() - started) * 1000
            elapsed_cpu = (time.thread_time() - started_cpu) * 1000
            assert response.status_code == 200
            if i >= 200:  # warm-up done
                times[name].append(elapsed)
                cpu[name].append(elapsed_cpu)
        app.extensions["onedata.engine"].dispose()
    figures: dict[str, float] = {}
    for name, values in times.items():
        values.sort()
        figures[f"{name}_median_ms"] = statistics.median(values)
        figures[f"{name}_p99_ms"] = values[int(len(values) * 0.99) - 1]
        figures[f"{name}_cpu_median_ms"] = statistics.median(cpu[name])
    figures["overhead_cpu_median_ms"] = (
        figures["logged_cpu_median_ms"] - figures["plain_cpu_median_ms"]
    )
    figures["overhead_median_ms"] = figures["logged_median_ms"] - figures["plain_median_ms"]
    figures["overhead_p99_ms"] = figures["logged_p99_ms"] - figures["plain_p99_ms"]
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=1_000_000)
    parser.add_argument("--requests", type=int, default=3000)
    parser.add_argument("--database-url", default=None, help="a migrated database for overhead")
    args = parser.parse_args()
    overhead = bench_overhead(args.requests, args.database_url)
    print(f"security log overhead per request ({args.requests} requests each, interleaved):")
    print(
        f"  unlogged: median {overhead['plain_median_ms']:.3f} ms, "
        f"p99 {overhead['plain_p99_ms']:.3f} ms"
    )
    print(
        f"  logged:   median {overhead['logged_median_ms']:.3f} ms, "
        f"p99 {overhead['logged_p99_ms']:.3f} ms"
    )
    print(
        f"  overhead: median {overhead['overhead_median_ms']:.3f} ms (target < 1 ms), "
        f"p99 {overhead['overhead_p99_ms']:.3f} ms; "
        f"CPU time median {overhead['overhead_cpu_median_ms']:.3f} ms"
    )
    result = bench_verify(args.records)
    print(
        f"security verify: {result['records']:,} records in {result['verify_s']:.1f} s "
        f"({result['per_record_us']:.1f} µs/record, {result['verify_cpu_s']:.1f} s of CPU;"
        f" target < 30 s); building them took {result['build_s']:.1f} s"
    )


if __name__ == "__main__":
    main()
