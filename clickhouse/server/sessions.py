"""ClickHouse HTTP sessions (`session_id`): one chDB connection kept per session between requests.

Why: clickhouse-connect sends a `session_id` by default, and a client that runs `SET ...` or
creates a temporary table expects to see it in its next query, as on a real server. A session
owns one `EngineConnection` (its own settings, current database, temporary tables); it is used by
one request at a time (a concurrent one gets SESSION_IS_LOCKED, like ClickHouse) and closed after
`session_timeout` seconds without use. Requests without a session get a fresh connection each.
A read-only user's session connection is read-only from its start (`EngineConnection.make_readonly`).
Each user may hold at most `max_sessions_per_user` sessions, as ClickHouse's `max_sessions_for_user`.

URL settings and the `database` parameter apply to one request only, while `SET`/`USE` statements
change the session. Putting the session back after every request costs several chDB calls, and a
client sends the same URL settings every time, so the restore is lazy: the request's settings stay
applied after it, remembered with the session's own values, and the next request only changes what
differs (restoring what it no longer asks for). After a `SET` or `USE` statement everything is put
back at once, so the session's own state is never confused with a request's.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field

from coinstream.clickhouse.server.auth import User
from coinstream.clickhouse.server.confinement import ReadonlyLimits
from coinstream.clickhouse.server.engine import Engine, EngineConnection
from coinstream.clickhouse.server.errors import (
    SESSION_IS_LOCKED,
    SESSION_NOT_FOUND,
    USER_SESSION_LIMIT_EXCEEDED,
    ClickHouseError,
)


@dataclass
class Session:
    session_id: str
    user_name: str
    connection: EngineConnection | None
    timeout_s: float
    busy: bool = False
    expires_at: float = field(default_factory=time.monotonic)
    # Request settings currently set on the connection, and the session's values they replaced
    # (None = the setting's default); the same for the database.
    applied: dict[str, str] = field(default_factory=dict)
    originals: dict[str, str | None] = field(default_factory=dict)
    applied_database: str | None = None
    original_database: str | None = None
    broken: bool = False  # its state could not be put back: dropped on release

    def touch(self) -> None:
        self.expires_at = time.monotonic() + self.timeout_s

    def open_connection(self) -> EngineConnection:
        """The session's connection (`SessionStore.acquire` always opens one)."""
        if self.connection is None:
            raise RuntimeError(f"session {self.session_id} has no engine connection")
        return self.connection

    def prepare(self, settings: dict[str, str], database: str | None) -> None:
        """Make the connection carry exactly these request settings and database (chDB calls)."""
        try:
            connection = self.open_connection()
            stale = {name: self.originals[name] for name in self.applied if name not in settings}
            if stale:
                connection.restore_settings(stale)
                for name in stale:
                    del self.applied[name], self.originals[name]
            new_names = [name for name in settings if name not in self.applied]
            self.originals.update(connection.snapshot_settings(new_names))
            changed = {name: value for name, value in settings.items() if self.applied.get(name) != value}
            self.applied.update(changed)  # before applying: a failure must still restore them
            connection.apply_settings(changed)
            if database and database != self.applied_database:
                if self.applied_database is None:
                    self.original_database = connection.current_database()
                self.applied_database = database
                connection.use_database(database)
            elif not database and self.applied_database is not None:
                self.reset_database()
        except BaseException:
            self.reset_quietly()
            raise

    def reset(self) -> None:
        """Put the session's own settings and database back (after SET/USE, or a failure)."""
        if self.originals:
            self.open_connection().restore_settings(self.originals)
        self.applied.clear()
        self.originals.clear()
        if self.applied_database is not None:
            self.reset_database()

    def reset_quietly(self) -> None:
        """`reset`, marking the session broken instead of raising if that fails too."""
        try:
            self.reset()
        except Exception:
            self.broken = True

    def reset_database(self) -> None:
        original, self.applied_database = self.original_database, None
        if original:
            self.open_connection().use_database(original)


class SessionStore:
    """The open sessions, their exclusive use by one request, and their expiry."""

    def __init__(
        self, engine: Engine, max_sessions_per_user: int = 100, readonly_limits: ReadonlyLimits | None = None
    ) -> None:
        self._engine = engine
        self._readonly_limits = readonly_limits or ReadonlyLimits()
        self._sessions: dict[str, Session] = {}
        self._max_sessions_per_user = max_sessions_per_user

    def __len__(self) -> int:
        return len(self._sessions)

    async def acquire(self, session_id: str, user: User, timeout_s: float, check: bool) -> Session:
        """The session, marked busy; created unless `check` (then SESSION_NOT_FOUND)."""
        session = self._sessions.get(session_id)
        if session is not None and session.expires_at < time.monotonic() and not session.busy:
            await self._close(session)
            session = None
        if session is None:
            if check:
                raise ClickHouseError.make(SESSION_NOT_FOUND, f"Session {session_id} not found")
            if self._count(user.name) >= self._max_sessions_per_user:
                await self.reap()
                if self._count(user.name) >= self._max_sessions_per_user:
                    raise ClickHouseError.make(
                        USER_SESSION_LIMIT_EXCEEDED,
                        f"User {user.name} has overflowed session count {self._max_sessions_per_user}",
                    )
            connection = await self._engine.lane(user.readonly)(self._open_connection, user)
            session = self._sessions.get(session_id)  # another request may have won the race
            if session is None:
                session = Session(session_id, user.name, connection, timeout_s)
                self._sessions[session_id] = session
            elif connection is not None:
                await self._engine.call(connection.close)
        if session.user_name != user.name:
            raise ClickHouseError.make(SESSION_IS_LOCKED, f"Session {session_id} belongs to a different user")
        if session.busy:
            raise ClickHouseError.make(SESSION_IS_LOCKED, f"Session {session_id} is locked by a concurrent client")
        session.busy = True
        session.timeout_s = timeout_s
        return session

    def _open_connection(self, user: User) -> EngineConnection:
        connection = self._engine.connect()
        if user.readonly:
            try:
                connection.make_readonly({}, self._readonly_limits)
            except BaseException:
                connection.close()
                raise
        return connection

    def _count(self, user_name: str) -> int:
        return sum(1 for session in self._sessions.values() if session.user_name == user_name)

    def release(self, session: Session) -> None:
        """Give the session back; a broken one (state could not be restored) is dropped."""
        session.busy = False
        session.touch()
        if session.broken and self._sessions.get(session.session_id) is session:
            del self._sessions[session.session_id]
            if session.connection is not None:
                asyncio.get_running_loop().create_task(self._engine.call(session.connection.close))

    async def reap(self) -> None:
        """Close sessions unused for longer than their timeout."""
        now = time.monotonic()
        for session in [s for s in self._sessions.values() if not s.busy and s.expires_at < now]:
            await self._close(session)

    async def _close(self, session: Session) -> None:
        if self._sessions.get(session.session_id) is session:
            del self._sessions[session.session_id]
        if session.connection is not None:
            await self._engine.call(session.connection.close)

    async def close_all(self) -> None:
        for session in list(self._sessions.values()):
            await self._close(session)
