"""Presence of users as the gateway reports it, and asking for it."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from parley_client.errors import ParleyError
from parley_client.features import FeatureLink
from parley_protocol import validation
from parley_protocol.errors import ParleyError as ProtocolError
from parley_protocol.pb import presence as presence_pb

DEFAULT_PRESENCE_TIMEOUT = 10.0


@dataclass(frozen=True)
class UserPresence:
    """Whether a user of the same application has a listening device, and how many."""

    user_id: str
    online: bool
    devices: int


class Presence:
    """Asks the gateway which users have a listening device (PresenceQuery)."""

    def __init__(self, link: FeatureLink) -> None:
        self._link = link

    async def query(
        self, user_ids: Iterable[str], timeout: float | None = None
    ) -> dict[str, UserPresence]:
        """Each user (duplicates once, in order); user ids are checked before anything is sent."""
        ids = [user_ids] if isinstance(user_ids, str) else list(dict.fromkeys(user_ids))
        for user_id in ids:
            try:
                validation.validate_user_id(user_id, "user_ids")
            except ProtocolError as exc:
                raise ParleyError.from_protocol(exc) from None
        if not ids:
            return {}
        reply = await self._link.request(
            presence_pb.PresenceQuery(user_ids=ids),
            presence_pb.PresenceResult,
            timeout or DEFAULT_PRESENCE_TIMEOUT,
        )
        result = {user_id: UserPresence(user_id, False, 0) for user_id in ids}
        for user in reply.users:
            if user.user_id in result:
                result[user.user_id] = UserPresence(user.user_id, user.online, user.devices)
        return result
