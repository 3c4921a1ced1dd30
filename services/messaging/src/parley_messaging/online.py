"""Which recipients have a device online for messaging, asked of presence for many sends at
once: the sends that arrive while one presence query runs share the next query (up to
MAX_QUERY_USERS users each), as group commit does for writes. Under load a send costs a
fraction of a query instead of one whole; a lone send waits for no one.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass

from parley_protocol.errors import ErrorCode, ParleyError
from parley_service import tasks
from parley_service.logs import get_logger
from parley_service.presence import MAX_QUERY_USERS, PresenceReader

log = get_logger("parley.messaging.online")


@dataclass
class _Asked:
    application_key: str
    user_ids: tuple[str, ...]
    # For each of user_ids, the sessions of its devices online that announced messaging.
    future: asyncio.Future[dict[str, frozenset[str]]]


def offline_among(online: dict[str, frozenset[str]] | None, user_ids: Sequence[str]) -> list[str]:
    """Of `user_ids`, those with no session online (all of them when presence could not
    say: None)."""
    if online is None:
        return list(user_ids)
    return [user for user in user_ids if not online.get(user)]


class OnlineUsers:
    def __init__(self, presence: PresenceReader) -> None:
        self._presence = presence
        self._asked: list[_Asked] = []
        self._wakeup = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        # Queries made and sends they answered (for tests and logs).
        self.queries = 0
        self.answered = 0

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="messaging-online-users")

    async def stop(self) -> None:
        await tasks.stop(self._task)
        self._task = None
        asked, self._asked = self._asked, []
        for one in asked:
            if not one.future.done():
                one.future.cancel()

    async def offline(self, application_key: str, user_ids: Sequence[str]) -> list[str]:
        """The users with no connected device that announced messaging (the app may push to
        them). When presence cannot say, every user: a push too many is better than a
        message nobody hears of."""
        if not user_ids:
            return []
        asked = self.ask(application_key, user_ids)
        return offline_among(await self.answer(application_key, asked), user_ids)

    @staticmethod
    async def answer(
        application_key: str, asked: asyncio.Future[dict[str, frozenset[str]]]
    ) -> dict[str, frozenset[str]] | None:
        """What `ask` answered; None (logged) when presence cannot say."""
        try:
            return await asked
        except ParleyError as exc:
            log.warning("presence_unavailable", app=application_key, error=str(exc))
            return None

    def ask(
        self, application_key: str, user_ids: Sequence[str]
    ) -> asyncio.Future[dict[str, frozenset[str]]]:
        """For each user, the sessions of its devices online that announced messaging, as a
        future (ParleyError when presence cannot say): the caller may do other work while
        the query runs."""
        if self._task is None:
            raise RuntimeError("OnlineUsers was not started")
        future: asyncio.Future[dict[str, frozenset[str]]] = (
            asyncio.get_running_loop().create_future()
        )
        self._asked.append(_Asked(application_key, tuple(user_ids), future))
        self._wakeup.set()
        return future

    async def _run(self) -> None:
        while True:
            await self._wakeup.wait()
            self._wakeup.clear()
            asked, self._asked = self._asked, []
            asked = [one for one in asked if not one.future.done()]
            if not asked:
                continue
            try:
                await self._answer(asked)
            except Exception as exc:  # a bug here must not leave sends waiting forever
                log.exception("online_users_failed")
                failure = ParleyError(ErrorCode.ERROR_CODE_INTERNAL, f"presence: {exc!r}")
                for one in asked:
                    if not one.future.done():
                        one.future.set_exception(failure)

    async def _answer(self, asked: list[_Asked]) -> None:
        by_app: dict[str, list[_Asked]] = {}
        for one in asked:
            by_app.setdefault(one.application_key, []).append(one)
        queries: list[tuple[str, list[str]]] = []
        for app, ones in by_app.items():
            users = list(dict.fromkeys(u for one in ones for u in one.user_ids))
            for start in range(0, len(users), MAX_QUERY_USERS):
                queries.append((app, users[start : start + MAX_QUERY_USERS]))
        results = await asyncio.gather(
            *(self._presence.devices(app, users) for app, users in queries),
            return_exceptions=True,
        )
        self.queries += len(queries)
        online: dict[str, dict[str, frozenset[str]]] = {app: {} for app in by_app}
        failed: dict[str, BaseException] = {}
        for (app, _), result in zip(queries, results, strict=True):
            if isinstance(result, BaseException):
                failed[app] = result
                continue
            for user, devices in result.items():
                online[app][user] = frozenset(d.session_id for d in devices if d.messaging)
        for one in asked:
            self.answered += 1
            if one.future.done():
                continue
            error = failed.get(one.application_key)
            if error is None:
                found = online[one.application_key]
                one.future.set_result({u: found.get(u, frozenset()) for u in one.user_ids})
            elif isinstance(error, ParleyError):
                one.future.set_exception(error)
            else:
                log.warning("presence_query_failed", error=repr(error))
                one.future.set_exception(
                    ParleyError(ErrorCode.ERROR_CODE_UNAVAILABLE, f"presence failed: {error!r}")
                )
