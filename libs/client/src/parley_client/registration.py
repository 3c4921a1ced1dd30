"""`ClientRegistration`: how the app hands over its server's signature (APPLICATION_SERVER)."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable

from parley_client.errors import ErrorType, ParleyError
from parley_client.logs import ClientLog
from parley_protocol.errors import ErrorCode

MAX_SEQUENCE = 2**64 - 1


class ClientRegistration:
    """Passed to `on_registration_credentials_required`. Call exactly one of `register`
    and `register_failed`, from any thread, now or later."""

    def __init__(
        self, user_id: str, application_key: str, log: ClientLog, loop: asyncio.AbstractEventLoop
    ) -> None:
        self.user_id = user_id
        self.application_key = application_key
        self._log = log
        self._loop = loop
        self._outcome: asyncio.Future[tuple[str, int]] = loop.create_future()
        self._answered = False
        self._lock = threading.Lock()

    def register(self, signature: str, sequence: int) -> None:
        """Register with the app server's `signature` over (user, key, `sequence`, secret)."""
        if not isinstance(signature, str) or not signature.strip():
            raise ParleyError(
                ErrorCode.ERROR_CODE_INVALID_ARGUMENT,
                "registration signature must be a non-empty string (Base64 of the SHA-1)",
                field="signature",
            )
        if isinstance(sequence, bool) or not isinstance(sequence, int):
            raise ParleyError(
                ErrorCode.ERROR_CODE_INVALID_ARGUMENT,
                f"registration sequence must be an int, not {type(sequence).__name__}",
                field="sequence",
            )
        if not 0 <= sequence <= MAX_SEQUENCE:
            raise ParleyError(
                ErrorCode.ERROR_CODE_INVALID_ARGUMENT,
                f"registration sequence {sequence} is outside 0 .. 2**64-1",
                field="sequence",
            )
        self._answer(lambda: self._outcome.set_result((signature.strip(), sequence)))

    def register_failed(self, reason: str = "") -> None:
        """The app server would not sign: the client fails to start."""
        error = ParleyError(
            ErrorCode.ERROR_CODE_UNAUTHENTICATED,
            "the application could not provide registration credentials"
            + (f": {reason}" if reason else " (register_failed)"),
            ErrorType.OTHER,
        )
        self._answer(lambda: self._outcome.set_exception(error))

    @property
    def answered(self) -> bool:
        return self._answered

    def _fail(self, error: ParleyError) -> None:
        """Give up (the listener raised, or the client is terminating)."""
        self._answer(lambda: self._outcome.set_exception(error), quiet=True)

    def _answer(self, settle: Callable[[], object], quiet: bool = False) -> None:
        with self._lock:
            if self._answered:
                if not quiet:
                    self._log.warning(
                        "registration", "registration was already answered; ignoring this call"
                    )
                return
            self._answered = True

        def apply() -> None:
            if not self._outcome.done():
                settle()

        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is self._loop:
            apply()
        else:
            self._loop.call_soon_threadsafe(apply)

    async def wait(self, timeout: float) -> tuple[str, int]:
        """The signature and sequence, or ParleyError (register_failed, or TIMEOUT)."""
        try:
            return await asyncio.wait_for(asyncio.shield(self._outcome), timeout)
        except TimeoutError:
            self._answer(self._outcome.cancel, quiet=True)
            raise ParleyError(
                ErrorCode.ERROR_CODE_TIMEOUT,
                f"no registration credentials within {timeout:g} s: the listener's "
                "on_registration_credentials_required must call registration.register("
                "signature, sequence) or registration.register_failed()",
                ErrorType.OTHER,
            ) from None
