"""Adapters layer: the durable job ledger on SQLite (implements ``domain.ledger_port.JobLedger``).

- stdlib ``sqlite3`` in autocommit mode with explicit short ``BEGIN IMMEDIATE`` transactions;
  ``journal_mode=WAL``, ``synchronous=FULL``, ``foreign_keys=ON``, a ``busy_timeout``.
- Every statement runs on ONE dedicated worker thread (a single-thread executor); every public
  method is async, so nothing touches SQLite on the event loop (the GUI thread).
- Schema versions live in ``PRAGMA user_version``; ``MIGRATIONS`` are applied in order.
- A corrupt file is moved aside (``*.corrupt-<time>``, with its -wal/-shm) and a fresh database
  is created, with a warning for the seller; a locked one raises ``LedgerLockedError``.
- Every state change is checked against ``domain/jobs.py``'s transition tables.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import logging
import sqlite3
import time
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

from pod_studio.adapters.storage.atomic import move_aside
from pod_studio.domain.jobs import (
    MAX_ATTEMPTS,
    ErrorKind,
    JobKind,
    JobStatus,
    StepStatus,
    assert_transition,
)
from pod_studio.domain.ledger_port import (
    AttemptRecord,
    JobNotRunningError,
    JobRecord,
    LedgerError,
    LedgerLockedError,
    StepRecord,
    UnknownJobError,
)

log = logging.getLogger(__name__)

T = TypeVar("T")

MAX_ERROR_CHARS = 2000


def _in(values: Iterable[str]) -> str:
    return ",".join(f"'{v}'" for v in values)


MIGRATIONS: list[list[str]] = [
    # 1: jobs, steps, attempt history, key/value flags
    [
        f"""CREATE TABLE job(
            id TEXT PRIMARY KEY,
            kind TEXT NOT NULL CHECK (kind IN ({_in(JobKind)})),
            state TEXT NOT NULL CHECK (state IN ({_in(JobStatus)})),
            payload TEXT NOT NULL CHECK (json_valid(payload)),
            attempts INTEGER NOT NULL DEFAULT 0,
            max_attempts INTEGER NOT NULL DEFAULT {MAX_ATTEMPTS},
            next_run_at REAL NOT NULL,
            lease_owner TEXT,
            lease_until REAL,
            last_error TEXT,
            last_error_kind TEXT CHECK (last_error_kind IS NULL
                                        OR last_error_kind IN ({_in(ErrorKind)})),
            server TEXT,
            created_at REAL NOT NULL,
            updated_at REAL NOT NULL)""",
        "CREATE INDEX job_ready ON job(state, next_run_at)",
        f"""CREATE TABLE step(
            job_id TEXT NOT NULL REFERENCES job(id) ON DELETE CASCADE,
            step TEXT NOT NULL,
            idem_key TEXT NOT NULL UNIQUE,
            state TEXT NOT NULL CHECK (state IN ({_in(StepStatus)})),
            remote_ref TEXT,
            started_at REAL,
            finished_at REAL,
            attempts INTEGER NOT NULL DEFAULT 0,
            PRIMARY KEY (job_id, step))""",
        "CREATE INDEX step_state ON step(state)",
        """CREATE TABLE attempt(
            id INTEGER PRIMARY KEY,
            job_id TEXT NOT NULL REFERENCES job(id) ON DELETE CASCADE,
            step TEXT,
            at REAL NOT NULL,
            outcome TEXT NOT NULL,
            error_kind TEXT,
            error TEXT)""",
        "CREATE INDEX attempt_job ON attempt(job_id, id)",
        "CREATE TABLE kv(key TEXT PRIMARY KEY, value TEXT NOT NULL)",
    ],
]
SCHEMA_VERSION = len(MIGRATIONS)

_CORRUPT_CODES = {sqlite3.SQLITE_CORRUPT, sqlite3.SQLITE_NOTADB}
_LOCKED_CODES = {sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED}


def _errcode(exc: sqlite3.Error) -> int | None:
    code = getattr(exc, "sqlite_errorcode", None)
    return code & 0xFF if isinstance(code, int) else None


def _is_corrupt(exc: sqlite3.Error) -> bool:
    return (
        _errcode(exc) in _CORRUPT_CODES or "malformed" in str(exc) or ("not a database" in str(exc))
    )


def _is_locked(exc: sqlite3.Error) -> bool:
    return _errcode(exc) in _LOCKED_CODES or "locked" in str(exc)


def _clip(text: str | None) -> str | None:
    if text is None:
        return None
    return text if len(text) <= MAX_ERROR_CHARS else text[: MAX_ERROR_CHARS - 1] + "…"


class _CorruptDatabase(Exception):
    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.detail = detail


class SqliteJobLedger:
    """The job ledger in one SQLite file. Create it, ``await open()``, ``await aclose()``."""

    def __init__(
        self,
        path: Path | str,
        *,
        clock: Callable[[], float] = time.time,
        busy_timeout_ms: int = 5000,
    ) -> None:
        self.path = Path(path)
        self._clock = clock
        self._busy_timeout_ms = busy_timeout_ms
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="job-ledger")
        self._conn: sqlite3.Connection | None = None
        self._closed = False
        self._warnings: list[str] = []

    # --- plumbing (worker thread) ---------------------------------------------------------

    async def _call(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        if self._closed:
            raise LedgerError("the job ledger is closed")
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(
            self._executor, functools.partial(self._guarded, fn, *args, **kwargs)
        )

    def _guarded(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        if self._conn is None:
            self._open_sync()
        try:
            return fn(*args, **kwargs)
        except sqlite3.Error as exc:
            raise self._map_error(exc, "while updating") from exc

    def _map_error(self, exc: sqlite3.Error, doing: str) -> LedgerError:
        if _is_locked(exc):
            return LedgerLockedError(
                f"job database {self.path} is locked ({exc})",
                user_message="The job database is in use by another program (is POD Studio "
                "already running?). Close it and try again.",
            )
        if _is_corrupt(exc):
            return LedgerError(
                f"job database {self.path} is damaged ({exc})",
                user_message="The job database is damaged. Restart POD Studio: it will keep "
                "a copy of the damaged file and start a fresh one.",
            )
        if _errcode(exc) == sqlite3.SQLITE_FULL:
            return LedgerError(
                f"job database {self.path}: disk full ({exc})",
                user_message="The disk is full: free some space so POD Studio can record jobs.",
            )
        return LedgerError(f"job database error {doing}: {exc}")

    @property
    def _db(self) -> sqlite3.Connection:
        if self._conn is None:  # pragma: no cover - _guarded opens first
            raise LedgerError("the job ledger is not open")
        return self._conn

    @contextlib.contextmanager
    def _tx(self) -> Iterator[sqlite3.Connection]:
        conn = self._db
        conn.execute("BEGIN IMMEDIATE")
        try:
            yield conn
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")

    def _connect(self) -> sqlite3.Connection:
        conn = sqlite3.connect(
            self.path, isolation_level=None, timeout=self._busy_timeout_ms / 1000
        )
        conn.row_factory = sqlite3.Row
        return conn

    def _setup(self, conn: sqlite3.Connection) -> None:
        conn.execute(f"PRAGMA busy_timeout={int(self._busy_timeout_ms)}")
        mode = conn.execute("PRAGMA journal_mode=WAL").fetchone()[0]
        if str(mode).lower() != "wal":
            log.warning("job database %s runs in journal mode %s, not WAL", self.path, mode)
        conn.execute("PRAGMA synchronous=FULL")
        conn.execute("PRAGMA foreign_keys=ON")
        check = conn.execute("PRAGMA quick_check").fetchall()
        if [tuple(r) for r in check] != [("ok",)]:
            raise _CorruptDatabase("; ".join(str(r[0]) for r in check[:3]))
        version = int(conn.execute("PRAGMA user_version").fetchone()[0])
        if version > SCHEMA_VERSION:
            raise LedgerError(
                f"job database {self.path} has schema {version}; this version knows "
                f"{SCHEMA_VERSION}",
                user_message="The job database was written by a newer POD Studio. "
                "Update POD Studio to use it.",
            )
        for target in range(version + 1, SCHEMA_VERSION + 1):
            conn.execute("BEGIN IMMEDIATE")
            try:
                for statement in MIGRATIONS[target - 1]:
                    conn.execute(statement)
                conn.execute(f"PRAGMA user_version={target}")
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            conn.execute("COMMIT")
            log.info("job database %s migrated to schema %d", self.path, target)

    def _open_sync(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            self._conn = self._try_open()
        except _CorruptDatabase as exc:
            self._recover_corrupt(exc.detail)
        except sqlite3.DatabaseError as exc:
            if _is_locked(exc) or not _is_corrupt(exc):
                raise self._map_error(exc, "while opening") from exc
            self._recover_corrupt(str(exc))

    def _try_open(self) -> sqlite3.Connection:
        conn = self._connect()
        try:
            self._setup(conn)
        except BaseException:
            conn.close()
            raise
        return conn

    def _recover_corrupt(self, detail: str) -> None:
        backup = move_aside(self.path, f"corrupt job database: {detail}")
        for suffix in ("-wal", "-shm"):
            side = self.path.with_name(self.path.name + suffix)
            if side.exists():
                move_aside(side, "belongs to a corrupt job database")
        msg = (
            f"The job database was damaged ({detail}). It was moved aside to {backup.name} "
            "and a fresh, empty one was created; jobs recorded in the old file are no longer "
            "listed."
        )
        self._warnings.append(msg)
        log.error("%s", msg)
        try:
            self._conn = self._try_open()
        except sqlite3.Error as exc:
            raise self._map_error(exc, "while creating a fresh database") from exc

    def _close_sync(self) -> None:
        if self._conn is not None:
            with contextlib.suppress(sqlite3.Error):
                self._conn.execute("PRAGMA optimize")
            self._conn.close()
            self._conn = None

    # --- lifecycle ------------------------------------------------------------------------

    async def open(self) -> list[str]:
        await self._call(lambda: None)
        return list(self._warnings)

    @property
    def warnings(self) -> list[str]:
        return list(self._warnings)

    async def aclose(self) -> None:
        if self._closed:
            return
        loop = asyncio.get_running_loop()
        try:
            await loop.run_in_executor(self._executor, self._close_sync)
        finally:
            self._closed = True
            self._executor.shutdown(wait=False)

    async def integrity_check(self) -> str:
        """``PRAGMA integrity_check``: "ok", or the first problems found."""
        return await self._call(self._integrity_sync)

    def _integrity_sync(self) -> str:
        rows = self._db.execute("PRAGMA integrity_check").fetchall()
        return "; ".join(str(r[0]) for r in rows[:5])

    # --- row helpers (worker thread) ------------------------------------------------------

    @staticmethod
    def _step_from_row(row: sqlite3.Row) -> StepRecord:
        return StepRecord(
            job_id=row["job_id"],
            step=row["step"],
            idem_key=row["idem_key"],
            state=StepStatus(row["state"]),
            remote_ref=row["remote_ref"],
            started_at=row["started_at"],
            finished_at=row["finished_at"],
            attempts=row["attempts"],
        )

    def _jobs_from_rows(self, rows: list[sqlite3.Row]) -> list[JobRecord]:
        if not rows:
            return []
        ids = [r["id"] for r in rows]
        steps: dict[str, list[StepRecord]] = {i: [] for i in ids}
        for chunk_start in range(0, len(ids), 500):
            chunk = ids[chunk_start : chunk_start + 500]
            marks = ",".join("?" * len(chunk))
            for srow in self._db.execute(
                f"SELECT * FROM step WHERE job_id IN ({marks}) ORDER BY rowid", chunk
            ):
                steps[srow["job_id"]].append(self._step_from_row(srow))
        return [
            JobRecord(
                id=r["id"],
                kind=JobKind(r["kind"]),
                state=JobStatus(r["state"]),
                payload=json.loads(r["payload"]),
                attempts=r["attempts"],
                max_attempts=r["max_attempts"],
                next_run_at=r["next_run_at"],
                lease_owner=r["lease_owner"],
                lease_until=r["lease_until"],
                last_error=r["last_error"],
                last_error_kind=ErrorKind(r["last_error_kind"]) if r["last_error_kind"] else None,
                server=r["server"],
                created_at=r["created_at"],
                updated_at=r["updated_at"],
                steps=steps[r["id"]],
            )
            for r in rows
        ]

    def _job_sync(self, job_id: str) -> JobRecord | None:
        rows = self._db.execute("SELECT * FROM job WHERE id=?", (job_id,)).fetchall()
        jobs = self._jobs_from_rows(rows)
        return jobs[0] if jobs else None

    def _require_job(self, job_id: str) -> JobRecord:
        job = self._job_sync(job_id)
        if job is None:
            raise UnknownJobError(f"no job {job_id!r}")
        return job

    def _require_step(self, job_id: str, step: str) -> StepRecord:
        row = self._db.execute(
            "SELECT * FROM step WHERE job_id=? AND step=?", (job_id, step)
        ).fetchone()
        if row is None:
            raise UnknownJobError(f"job {job_id!r} has no step {step!r}")
        return self._step_from_row(row)

    def _attempt(
        self,
        job_id: str,
        outcome: str,
        *,
        step: str | None = None,
        kind: ErrorKind | None = None,
        error: str | None = None,
    ) -> None:
        self._db.execute(
            "INSERT INTO attempt(job_id, step, at, outcome, error_kind, error) "
            "VALUES (?,?,?,?,?,?)",
            (job_id, step, self._clock(), outcome, kind.value if kind else None, _clip(error)),
        )

    def _move_job(self, job: JobRecord, new: JobStatus, **fields: Any) -> None:
        """Change a job's state (checked against the table) and set ``fields``."""
        assert_transition("job", job.state, new)
        fields = {"state": new.value, "updated_at": self._clock(), **fields}
        cols = ", ".join(f"{k}=?" for k in fields)
        cur = self._db.execute(
            f"UPDATE job SET {cols} WHERE id=? AND state=?",
            (*fields.values(), job.id, job.state.value),
        )
        if cur.rowcount != 1:  # pragma: no cover - the worker thread serialises writers
            raise LedgerError(f"job {job.id} changed under us")

    def _move_step(self, step: StepRecord, new: StepStatus, **fields: Any) -> None:
        assert_transition("step", step.state, new)
        fields = {"state": new.value, **fields}
        cols = ", ".join(f"{k}=?" for k in fields)
        self._db.execute(
            f"UPDATE step SET {cols} WHERE job_id=? AND step=? AND state=?",
            (*fields.values(), step.job_id, step.step, step.state.value),
        )

    def _move_steps(self, job: JobRecord, old: set[StepStatus], new: StepStatus) -> None:
        for s in job.steps:
            if s.state in old:
                self._move_step(s, new)

    # --- jobs -----------------------------------------------------------------------------

    async def add_job(
        self,
        kind: JobKind,
        payload: Mapping[str, Any],
        *,
        job_id: str | None = None,
        max_attempts: int = MAX_ATTEMPTS,
        next_run_at: float | None = None,
        server: str | None = None,
        steps: Mapping[str, str] | None = None,
    ) -> JobRecord:
        try:
            payload_json = json.dumps(dict(payload), sort_keys=True, separators=(",", ":"))
        except (TypeError, ValueError) as exc:
            raise LedgerError(f"job payload is not JSON: {exc}") from exc
        if max_attempts < 1:
            raise LedgerError("max_attempts must be at least 1")
        return await self._call(
            self._add_sync,
            JobKind(kind),
            payload_json,
            job_id or uuid.uuid4().hex,
            max_attempts,
            next_run_at,
            server,
            dict(steps or {}),
        )

    def _add_sync(
        self,
        kind: JobKind,
        payload_json: str,
        job_id: str,
        max_attempts: int,
        next_run_at: float | None,
        server: str | None,
        steps: dict[str, str],
    ) -> JobRecord:
        now = self._clock()
        with self._tx() as db:
            if db.execute("SELECT 1 FROM job WHERE id=?", (job_id,)).fetchone():
                raise LedgerError(f"job {job_id!r} already exists")
            db.execute(
                "INSERT INTO job(id, kind, state, payload, attempts, max_attempts, next_run_at,"
                " server, created_at, updated_at) VALUES (?,?,?,?,0,?,?,?,?,?)",
                (
                    job_id,
                    kind.value,
                    JobStatus.QUEUED.value,
                    payload_json,
                    max_attempts,
                    now if next_run_at is None else next_run_at,
                    server,
                    now,
                    now,
                ),
            )
            for name, key in steps.items():
                self._insert_step(job_id, name, key)
            self._attempt(job_id, "queued")
        return self._require_job(job_id)

    def _insert_step(self, job_id: str, step: str, idem_key: str) -> None:
        other = self._db.execute(
            "SELECT job_id, step FROM step WHERE idem_key=?", (idem_key,)
        ).fetchone()
        if other is not None:
            raise LedgerError(
                f"idempotency key {idem_key} is already used by job {other['job_id']} "
                f"step {other['step']}",
                user_message="This design was already sent to this product and platform by "
                "another job.",
            )
        self._db.execute(
            "INSERT INTO step(job_id, step, idem_key, state) VALUES (?,?,?,?)",
            (job_id, step, idem_key, StepStatus.PENDING.value),
        )

    async def get_job(self, job_id: str) -> JobRecord | None:
        return await self._call(self._job_sync, job_id)

    async def list_jobs(
        self, states: Iterable[JobStatus] | None = None, *, kind: JobKind | None = None
    ) -> list[JobRecord]:
        wanted = None if states is None else [JobStatus(s).value for s in states]
        return await self._call(self._list_sync, wanted, kind)

    def _list_sync(self, states: list[str] | None, kind: JobKind | None) -> list[JobRecord]:
        sql = "SELECT * FROM job WHERE 1=1"
        args: list[Any] = []
        if states is not None:
            if not states:
                return []
            sql += f" AND state IN ({','.join('?' * len(states))})"
            args += states
        if kind is not None:
            sql += " AND kind=?"
            args.append(JobKind(kind).value)
        sql += " ORDER BY created_at, rowid"
        return self._jobs_from_rows(self._db.execute(sql, args).fetchall())

    async def claim_ready(
        self,
        now: float,
        limit: int,
        *,
        owner: str = "",
        lease_seconds: float = 600.0,
        kind: JobKind | None = None,
    ) -> list[JobRecord]:
        if limit <= 0:
            return []
        return await self._call(self._claim_sync, now, limit, owner, lease_seconds, kind)

    def _claim_sync(
        self, now: float, limit: int, owner: str, lease_seconds: float, kind: JobKind | None
    ) -> list[JobRecord]:
        with self._tx() as db:
            if self._paused_sync():
                return []
            sql = (
                "SELECT * FROM job WHERE state IN (?, ?) AND next_run_at <= ?"
                + (" AND kind=?" if kind is not None else "")
                + " ORDER BY next_run_at, created_at, rowid LIMIT ?"
            )
            args: list[Any] = [JobStatus.QUEUED.value, JobStatus.RETRY_WAIT.value, now]
            if kind is not None:
                args.append(JobKind(kind).value)
            args.append(limit)
            jobs = self._jobs_from_rows(db.execute(sql, args).fetchall())
            for job in jobs:
                self._move_job(
                    job,
                    JobStatus.RUNNING,
                    attempts=job.attempts + 1,
                    lease_owner=owner or None,
                    lease_until=now + lease_seconds,
                )
                self._attempt(job.id, "claimed")
        return [j for j in (self._job_sync(job.id) for job in jobs) if j is not None]

    async def requeue_running(self, *, lease_expired_before: float | None = None) -> list[str]:
        return await self._call(self._requeue_sync, lease_expired_before)

    def _requeue_sync(self, before: float | None) -> list[str]:
        with self._tx() as db:
            sql = "SELECT * FROM job WHERE state=?"
            args: list[Any] = [JobStatus.RUNNING.value]
            if before is not None:
                sql += " AND (lease_until IS NULL OR lease_until < ?)"
                args.append(before)
            jobs = self._jobs_from_rows(db.execute(sql, args).fetchall())
            for job in jobs:
                self._move_job(job, JobStatus.QUEUED, lease_owner=None, lease_until=None)
                self._attempt(job.id, "requeued")
        return [j.id for j in jobs]

    # --- steps ----------------------------------------------------------------------------

    async def record_intent(self, job_id: str, step: str, idem_key: str) -> StepRecord:
        return await self._call(self._intent_sync, job_id, step, idem_key)

    def _intent_sync(self, job_id: str, step: str, idem_key: str) -> StepRecord:
        with self._tx():
            job = self._require_job(job_id)
            if job.state is not JobStatus.RUNNING:
                raise JobNotRunningError(
                    f"job {job_id} is {job.state.value}, not running: step {step!r} not started"
                )
            current = job.step(step)
            if current is None:
                self._insert_step(job_id, step, idem_key)
                current = self._require_step(job_id, step)
            elif current.idem_key != idem_key:
                raise LedgerError(
                    f"job {job_id} step {step!r} has idempotency key {current.idem_key}, "
                    f"not {idem_key}"
                )
            self._move_step(
                current,
                StepStatus.IN_FLIGHT,
                started_at=self._clock(),
                finished_at=None,
                attempts=current.attempts + 1,
            )
            self._attempt(job_id, "intent", step=step)
        return self._require_step(job_id, step)

    async def record_result(
        self, job_id: str, step: str, remote_ref: str | None = None
    ) -> StepRecord:
        return await self._call(self._result_sync, job_id, step, remote_ref)

    def _result_sync(self, job_id: str, step: str, remote_ref: str | None) -> StepRecord:
        with self._tx():
            current = self._require_step(job_id, step)
            self._move_step(
                current, StepStatus.DONE, remote_ref=remote_ref, finished_at=self._clock()
            )
            self._attempt(job_id, "step_done", step=step)
        return self._require_step(job_id, step)

    async def record_step_failed(
        self, job_id: str, step: str, error: str, kind: ErrorKind
    ) -> StepRecord:
        return await self._call(self._step_failed_sync, job_id, step, error, ErrorKind(kind))

    def _step_failed_sync(self, job_id: str, step: str, error: str, kind: ErrorKind) -> StepRecord:
        with self._tx():
            current = self._require_step(job_id, step)
            self._move_step(current, StepStatus.FAILED, finished_at=self._clock())
            self._attempt(job_id, "step_failed", step=step, kind=kind, error=error)
        return self._require_step(job_id, step)

    async def reset_step(self, job_id: str, step: str) -> StepRecord:
        return await self._call(self._reset_step_sync, job_id, step)

    def _reset_step_sync(self, job_id: str, step: str) -> StepRecord:
        with self._tx():
            current = self._require_step(job_id, step)
            self._move_step(current, StepStatus.PENDING, finished_at=None)
            self._attempt(job_id, "step_reset", step=step)
        return self._require_step(job_id, step)

    async def in_flight_steps(self) -> list[StepRecord]:
        return await self._call(self._in_flight_sync)

    def _in_flight_sync(self) -> list[StepRecord]:
        rows = self._db.execute(
            "SELECT * FROM step WHERE state=? ORDER BY started_at, rowid",
            (StepStatus.IN_FLIGHT.value,),
        ).fetchall()
        return [self._step_from_row(r) for r in rows]

    # --- outcomes -------------------------------------------------------------------------

    async def mark_retry(
        self, job_id: str, error: str, kind: ErrorKind, next_run_at: float
    ) -> JobRecord:
        return await self._call(self._retry_sync, job_id, error, ErrorKind(kind), next_run_at)

    def _retry_sync(
        self, job_id: str, error: str, kind: ErrorKind, next_run_at: float
    ) -> JobRecord:
        with self._tx():
            job = self._require_job(job_id)
            if job.attempts >= job.max_attempts:
                reason = f"gave up after {job.attempts} attempts: {error}"
                self._dead_sync(job, reason, kind)
            else:
                self._move_job(
                    job,
                    JobStatus.RETRY_WAIT,
                    next_run_at=next_run_at,
                    last_error=_clip(error),
                    last_error_kind=kind.value,
                    lease_owner=None,
                    lease_until=None,
                )
                self._attempt(job_id, "retry", kind=kind, error=error)
        return self._require_job(job_id)

    async def mark_waiting(self, job_id: str, reason: str, next_run_at: float) -> JobRecord:
        """Put a claimed job back to wait without charging the attempt its claim took: the
        reason is not the job's own failure (an open breaker, a service not set up, the
        seller moving it)."""
        return await self._call(self._waiting_sync, job_id, reason, next_run_at)

    def _waiting_sync(self, job_id: str, reason: str, next_run_at: float) -> JobRecord:
        with self._tx():
            job = self._require_job(job_id)
            self._move_job(
                job,
                JobStatus.RETRY_WAIT,
                attempts=max(0, job.attempts - 1)
                if job.state is JobStatus.RUNNING
                else job.attempts,
                next_run_at=next_run_at,
                last_error=_clip(reason),
                last_error_kind=ErrorKind.WAIT.value,
                lease_owner=None,
                lease_until=None,
            )
            self._attempt(job_id, "waiting", kind=ErrorKind.WAIT, error=reason)
        return self._require_job(job_id)

    def _dead_sync(self, job: JobRecord, reason: str, kind: ErrorKind) -> None:
        self._move_job(
            job,
            JobStatus.DEAD,
            last_error=_clip(reason),
            last_error_kind=kind.value,
            lease_owner=None,
            lease_until=None,
        )
        self._move_steps(job, {StepStatus.PENDING, StepStatus.FAILED}, StepStatus.DEAD)
        self._attempt(job.id, "dead", kind=kind, error=reason)

    async def mark_dead(
        self, job_id: str, reason: str, kind: ErrorKind = ErrorKind.PERMANENT
    ) -> JobRecord:
        return await self._call(self._mark_dead_sync, job_id, reason, ErrorKind(kind))

    def _mark_dead_sync(self, job_id: str, reason: str, kind: ErrorKind) -> JobRecord:
        with self._tx():
            self._dead_sync(self._require_job(job_id), reason, kind)
        return self._require_job(job_id)

    async def mark_succeeded(self, job_id: str, *, partial: bool = False) -> JobRecord:
        return await self._call(self._succeeded_sync, job_id, partial)

    def _succeeded_sync(self, job_id: str, partial: bool) -> JobRecord:
        new = JobStatus.PARTIALLY_PUBLISHED if partial else JobStatus.SUCCEEDED
        with self._tx():
            job = self._require_job(job_id)
            self._move_job(job, new, lease_owner=None, lease_until=None)
            self._attempt(job_id, new.value)
        return self._require_job(job_id)

    async def mark_cancelled(self, job_id: str) -> JobRecord:
        return await self._call(self._cancel_sync, job_id)

    def _cancel_sync(self, job_id: str) -> JobRecord:
        with self._tx():
            job = self._require_job(job_id)
            self._move_job(job, JobStatus.CANCELLED, lease_owner=None, lease_until=None)
            self._move_steps(job, {StepStatus.PENDING, StepStatus.FAILED}, StepStatus.CANCELLED)
            self._attempt(job_id, "cancelled")
        return self._require_job(job_id)

    async def manual_retry(self, job_id: str, *, now: float | None = None) -> JobRecord:
        return await self._call(self._manual_retry_sync, job_id, now)

    def _manual_retry_sync(self, job_id: str, now: float | None) -> JobRecord:
        with self._tx():
            job = self._require_job(job_id)
            self._move_job(
                job,
                JobStatus.QUEUED,
                attempts=0,
                next_run_at=self._clock() if now is None else now,
                lease_owner=None,
                lease_until=None,
            )
            self._move_steps(
                job,
                {StepStatus.DEAD, StepStatus.CANCELLED, StepStatus.FAILED},
                StepStatus.PENDING,
            )
            self._attempt(job_id, "manual_retry")
        return self._require_job(job_id)

    async def discard(self, job_id: str) -> bool:
        return await self._call(self._discard_sync, job_id)

    def _discard_sync(self, job_id: str) -> bool:
        with self._tx() as db:
            job = self._job_sync(job_id)
            if job is None:
                return False
            if job.state is JobStatus.RUNNING:
                raise LedgerError(
                    f"job {job_id} is running; cancel it before discarding it",
                    user_message="Cancel the job before removing it.",
                )
            db.execute("DELETE FROM job WHERE id=?", (job_id,))
        return True

    # --- history, counts, flags -----------------------------------------------------------

    async def attempts(self, job_id: str) -> list[AttemptRecord]:
        return await self._call(self._attempts_sync, job_id)

    def _attempts_sync(self, job_id: str) -> list[AttemptRecord]:
        rows = self._db.execute(
            "SELECT * FROM attempt WHERE job_id=? ORDER BY id", (job_id,)
        ).fetchall()
        return [
            AttemptRecord(
                id=r["id"],
                job_id=r["job_id"],
                step=r["step"],
                at=r["at"],
                outcome=r["outcome"],
                error_kind=ErrorKind(r["error_kind"]) if r["error_kind"] else None,
                error=r["error"],
            )
            for r in rows
        ]

    async def counts(self) -> dict[JobStatus, int]:
        return await self._call(self._counts_sync)

    def _counts_sync(self) -> dict[JobStatus, int]:
        out = dict.fromkeys(JobStatus, 0)
        for row in self._db.execute("SELECT state, COUNT(*) AS n FROM job GROUP BY state"):
            out[JobStatus(row["state"])] = int(row["n"])
        return out

    async def next_due(self) -> float | None:
        """When the next queued or waiting job is due (None: nothing is); a plain read."""
        return await self._call(self._next_due_sync)

    def _next_due_sync(self) -> float | None:
        row = self._db.execute(
            "SELECT MIN(next_run_at) AS due FROM job WHERE state IN (?, ?)",
            (JobStatus.QUEUED.value, JobStatus.RETRY_WAIT.value),
        ).fetchone()
        return None if row is None or row["due"] is None else float(row["due"])

    async def set_paused(self, paused: bool) -> None:
        await self._call(self._set_paused_sync, paused)

    def _set_paused_sync(self, paused: bool) -> None:
        with self._tx() as db:
            db.execute(
                "INSERT INTO kv(key, value) VALUES ('paused', ?) "
                "ON CONFLICT(key) DO UPDATE SET value=excluded.value",
                ("1" if paused else "0",),
            )

    async def is_paused(self) -> bool:
        return await self._call(self._paused_sync)

    def _paused_sync(self) -> bool:
        row = self._db.execute("SELECT value FROM kv WHERE key='paused'").fetchone()
        return row is not None and row["value"] == "1"
