"""All SQL of the `stats` schema, one function per query.

Every function takes an asyncpg pool or connection (`db`). Times are passed in.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from parley.v1 import calls_pb2, stats_pb2
from parley_stats.records import ReportRow

# Both asyncpg.Pool and asyncpg.Connection (asyncpg ships no type hints).
Db = Any

_COLUMNS = (
    ("application_key", "text"),
    ("call_id", "text"),
    ("device_instance", "text"),
    ("user_id", "text"),
    ("kind", "smallint"),
    ("direction", "smallint"),
    ("end_cause", "smallint"),
    ("error_code", "text"),
    ("remote", "text"),
    ("started_at", "timestamptz"),
    ("received_at", "timestamptz"),
    ("setup_ms", "integer"),
    ("ringing_ms", "integer"),
    ("talk_ms", "integer"),
    ("codec", "text"),
    ("rtt_ms", "double precision"),
    ("jitter_ms", "double precision"),
    ("loss", "double precision"),
    ("mos", "double precision"),
    ("report", "bytea"),
)
_NAMES = ", ".join(name for name, _ in _COLUMNS)
_ARRAYS = ", ".join(f"${i}::{kind}[]" for i, (_, kind) in enumerate(_COLUMNS, start=1))
_INSERT = f"""
    INSERT INTO stats.call_reports ({_NAMES}, stored_at)
    SELECT *, ${len(_COLUMNS) + 1}::timestamptz FROM unnest({_ARRAYS})
    ON CONFLICT (application_key, call_id, device_instance) DO NOTHING
    RETURNING application_key, call_id, device_instance
"""


async def insert_reports(
    db: Db, rows: Sequence[ReportRow], now: datetime
) -> set[tuple[str, str, str]]:
    """Insert the rows not stored yet (one statement); the keys of those it inserted."""
    if not rows:
        return set()
    columns = [[getattr(row, name) for row in rows] for name, _ in _COLUMNS]
    inserted = await db.fetch(_INSERT, *columns, now)
    return {(r["application_key"], r["call_id"], r["device_instance"]) for r in inserted}


async def report_exists(db: Db, application_key: str, call_id: str, instance: str) -> bool:
    found: bool = await db.fetchval(
        """
        SELECT EXISTS (SELECT 1 FROM stats.call_reports
                       WHERE application_key = $1 AND call_id = $2 AND device_instance = $3)
        """,
        application_key,
        call_id,
        instance,
    )
    return found


@dataclass(frozen=True)
class CallCountRow:
    kind: int
    end_cause: int
    calls: int


async def call_counts(
    db: Db, application_key: str, start: datetime, end: datetime
) -> list[CallCountRow]:
    """Calls that started in [start, end), each counted once by the report that speaks for
    it: the caller's side first (the callee's other devices only heard another answer),
    then any report not saying OTHER_DEVICE_ANSWERED, then the first one received."""
    rows = await db.fetch(
        """
        WITH calls AS (
            SELECT DISTINCT ON (call_id) kind, end_cause
            FROM stats.call_reports
            WHERE application_key = $1 AND started_at >= $2 AND started_at < $3
            ORDER BY call_id, (direction = $4) DESC, (end_cause = $5) ASC,
                     received_at, device_instance
        )
        SELECT kind, end_cause, count(*) AS calls
        FROM calls GROUP BY kind, end_cause ORDER BY kind, end_cause
        """,
        application_key,
        start,
        end,
        stats_pb2.CALL_DIRECTION_OUTGOING,
        calls_pb2.CALL_END_CAUSE_OTHER_DEVICE_ANSWERED,
    )
    return [CallCountRow(r["kind"], r["end_cause"], r["calls"]) for r in rows]


@dataclass(frozen=True)
class Quantiles:
    samples: int
    values: tuple[float, ...]  # at QUANTILES; empty without samples


QUANTILES = (0.5, 0.9, 0.99)


@dataclass(frozen=True)
class QualityRow:
    reports: int
    setup_ms: Quantiles
    mos: Quantiles


async def quality(db: Db, application_key: str, start: datetime, end: datetime) -> QualityRow:
    """Reports of calls that started in [start, end), and percentiles of set-up time and
    MOS over the reports that measured them (above 0)."""
    row = await db.fetchrow(
        """
        SELECT count(*) AS reports,
               count(*) FILTER (WHERE setup_ms > 0) AS setup_samples,
               percentile_cont($4::float8[]) WITHIN GROUP (ORDER BY setup_ms)
                   FILTER (WHERE setup_ms > 0) AS setup,
               count(*) FILTER (WHERE mos > 0) AS mos_samples,
               percentile_cont($4::float8[]) WITHIN GROUP (ORDER BY mos)
                   FILTER (WHERE mos > 0) AS mos
        FROM stats.call_reports
        WHERE application_key = $1 AND started_at >= $2 AND started_at < $3
        """,
        application_key,
        start,
        end,
        list(QUANTILES),
    )
    return QualityRow(
        reports=row["reports"],
        setup_ms=Quantiles(row["setup_samples"], tuple(row["setup"] or ())),
        mos=Quantiles(row["mos_samples"], tuple(row["mos"] or ())),
    )


async def delete_reports_before(db: Db, cutoff: datetime, limit: int) -> int:
    """Delete up to `limit` of the oldest reports of calls started before the cutoff; return
    how many went. Rows another replica's purge holds are skipped, not waited for."""
    status: str = await db.execute(
        "WITH doomed AS ("
        "  SELECT application_key, call_id, device_instance FROM stats.call_reports"
        "  WHERE started_at < $1 ORDER BY started_at LIMIT $2 FOR UPDATE SKIP LOCKED"
        " )"
        " DELETE FROM stats.call_reports r USING doomed"
        " WHERE (r.application_key, r.call_id, r.device_instance)"
        "   = (doomed.application_key, doomed.call_id, doomed.device_instance)",
        cutoff,
        limit,
    )
    return int(status.split()[-1])
