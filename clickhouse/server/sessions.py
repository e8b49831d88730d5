"""ClickHouse HTTP sessions (`session_id`): one chDB connection kept per session between requests.

Why: clickhouse-connect sends a `session_id` by default, and a client that runs `SET ...` or
creates a temporary table expects to see it in its next query, as on a real server. A session
owns one `EngineConnection` (its own settings, current database, temporary tables); it is used by
one request at a time (a concurrent one gets SESSION_IS_LOCKED, like ClickHouse) and closed after
`session_timeout` seconds without use. Requests without a session get a fresh connection each.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field

from clickhouse.server.auth import User
from clickhouse.server.engine import Engine, EngineConnection
from clickhouse.server.errors import SESSION_IS_LOCKED, SESSION_NOT_FOUND, ClickHouseError


@dataclass
class Session:
    session_id: str
    user_name: str
    connection: EngineConnection
    timeout_s: float
    busy: bool = False
    expires_at: float = field(default_factory=time.monotonic)

    def touch(self) -> None:
        self.expires_at = time.monotonic() + self.timeout_s


class SessionStore:
    """The open sessions, their exclusive use by one request, and their expiry."""

    def __init__(self, engine: Engine, max_sessions: int = 1000) -> None:
        self._engine = engine
        self._sessions: dict[str, Session] = {}
        self._max_sessions = max_sessions

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
            if len(self._sessions) >= self._max_sessions:
                await self.reap()
            connection = await self._engine.call(self._open_connection, user)
            session = self._sessions.get(session_id)  # another request may have won the race
            if session is None:
                session = Session(session_id, user.name, connection, timeout_s)
                self._sessions[session_id] = session
            else:
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
            connection.make_readonly()
        return connection

    def release(self, session: Session, broken: bool = False) -> None:
        """Give the session back; a `broken` one (state could not be restored) is dropped."""
        session.busy = False
        session.touch()
        if broken and self._sessions.get(session.session_id) is session:
            del self._sessions[session.session_id]
            asyncio.get_running_loop().create_task(self._engine.call(session.connection.close))

    async def reap(self) -> None:
        """Close sessions unused for longer than their timeout."""
        now = time.monotonic()
        for session in [s for s in self._sessions.values() if not s.busy and s.expires_at < now]:
            await self._close(session)

    async def _close(self, session: Session) -> None:
        if self._sessions.get(session.session_id) is session:
            del self._sessions[session.session_id]
        await self._engine.call(session.connection.close)

    async def close_all(self) -> None:
        for session in list(self._sessions.values()):
            await self._close(session)
