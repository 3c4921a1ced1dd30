"""Presence of users as the gateway reports it."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class UserPresence:
    """Whether a user of the same application has a listening device, and how many."""

    user_id: str
    online: bool
    devices: int
