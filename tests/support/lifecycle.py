"""`Started`: a test helper with `start()` and `stop()` used as `async with helper:` (started
on entry, stopped on exit, whatever happened)."""

from __future__ import annotations

from types import TracebackType
from typing import Self


class Started:
    async def start(self) -> None:
        raise NotImplementedError

    async def stop(self) -> object:
        raise NotImplementedError

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()
