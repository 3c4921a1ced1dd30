"""Whether recipients ever registered a device in the application, asked of auth
(`parley.auth.user_lookup`) and remembered.

Only positive answers are remembered: for messaging a registration is never undone (a
revoked device still counts: it may come back with a new one), while a user unknown now may
register a moment later. The memory is bounded; the least recently used go first.
"""

from __future__ import annotations

import asyncio
from collections import OrderedDict
from collections.abc import Sequence

from parley.v1 import auth_pb2
from parley_protocol import subjects
from parley_protocol.errors import ErrorCode, ParleyError
from parley_service.bus import Bus

# How long a send waits for auth to say whether a recipient ever registered.
LOOKUP_TIMEOUT_SECONDS = 2.0


class LruSet:
    """A set of at most `size` keys; adding or finding a key makes it the most recent."""

    def __init__(self, size: int) -> None:
        self._size = size
        self._keys: OrderedDict[tuple[str, str], None] = OrderedDict()

    def __contains__(self, key: tuple[str, str]) -> bool:
        if key in self._keys:
            self._keys.move_to_end(key)
            return True
        return False

    def __len__(self) -> int:
        return len(self._keys)

    def add(self, key: tuple[str, str]) -> None:
        if self._size <= 0:
            return
        self._keys[key] = None
        self._keys.move_to_end(key)
        while len(self._keys) > self._size:
            self._keys.popitem(last=False)


class RegisteredUsers:
    def __init__(self, bus: Bus, cache_size: int) -> None:
        self._bus = bus
        self.known = LruSet(cache_size)
        # Lookups asked of auth (for tests and logs: the cache saves them).
        self.lookups = 0

    async def require(
        self, application_key: str, user_ids: Sequence[str], field: str = "recipient_ids"
    ) -> None:
        """Return when every user ever registered a device in the application; else
        NOT_FOUND naming the first who did not (field `recipient_ids[i]`). Auth is asked
        about the users not known yet, all at once."""
        unknown = [
            (index, user_id)
            for index, user_id in enumerate(user_ids)
            if (application_key, user_id) not in self.known
        ]
        if not unknown:
            return
        answers = await asyncio.gather(
            *(self._registered(application_key, user_id) for _, user_id in unknown)
        )
        for (_, user_id), registered in zip(unknown, answers, strict=True):
            if registered:
                self.known.add((application_key, user_id))
        for (index, user_id), registered in zip(unknown, answers, strict=True):
            if not registered:
                raise ParleyError(
                    ErrorCode.ERROR_CODE_NOT_FOUND,
                    f"{user_id} has never registered a device in this application",
                    f"{field}[{index}]",
                )

    async def _registered(self, application_key: str, user_id: str) -> bool:
        self.lookups += 1
        found = await self._bus.request(
            subjects.AUTH_USER_LOOKUP,
            auth_pb2.UserLookupRequest(application_key=application_key, user_id=user_id),
            auth_pb2.UserLookupResponse,
            LOOKUP_TIMEOUT_SECONDS,
        )
        return found.registered
