"""`ParleyClient`: the SDK's entry point (the guide's SinchClient)."""

from __future__ import annotations

import asyncio
import dataclasses
import enum
import random
from collections.abc import Awaitable, Iterable, Mapping
from typing import TypeVar

import aiohttp

from parley.v1 import push_pb2 as push_pb
from parley_client.audio import AudioController
from parley_client.builder import ParleyClientBuilder
from parley_client.calls import CallClient
from parley_client.config import Capabilities, ClientConfig, Endpoint, check_configuration
from parley_client.connection import Connection
from parley_client.dispatcher import FeatureDispatcher
from parley_client.errors import ErrorType, ParleyError, terminated
from parley_client.features import Connected, Feature, FeatureLink
from parley_client.hello import client_version, hello_message
from parley_client.listeners import ListenerSet
from parley_client.listening import Listening
from parley_client.logs import ClientLog
from parley_client.messaging import MessageClient
from parley_client.notification import (
    CallNotificationResult,
    MessageNotificationResult,
    NotificationResult,
    PushToken,
)
from parley_client.presence import Presence, UserPresence
from parley_client.push import PushClient, passing, payload_bytes
from parley_client.registration import ClientRegistration
from parley_client.resume import ResumeStats
from parley_client.session import Session
from parley_client.stats_upload import CallReportUploader
from parley_client.tokens import Authenticator
from parley_client.video import VideoController
from parley_protocol.clock import Clock, SystemClock
from parley_protocol.errors import ErrorCode
from parley_protocol.pb import calls as calls_pb
from parley_protocol.pb import client as pb

DEFAULT_GRACEFUL_TIMEOUT = 5.0
# How long terminate() lets the reports of the calls it ended go out.
REPORTS_FLUSH_TIMEOUT = 1.0


class _State(enum.Enum):
    NEW = "new"
    STARTING = "starting"
    STARTED = "started"
    RECONNECTING = "reconnecting"
    FAILED = "failed"
    STOPPED = "stopped"


_RUNNING = frozenset({_State.STARTING, _State.STARTED, _State.RECONNECTING})

# How a call a push payload is about ended when it rang out unanswered.
_RANG_OUT = frozenset({calls_pb.CALL_END_CAUSE_NO_ANSWER, calls_pb.CALL_END_CAUSE_TIMEOUT})

F = TypeVar("F", bound=Feature)


class ClientListener:
    """Events of a `ParleyClient` (the guide's SinchClientListener). Every method is a no-op
    here; override the ones you need, as plain methods or as coroutines (the client awaits them).
    """

    def on_client_started(self, client: ParleyClient) -> Awaitable[None] | None:
        """The client is registered and connected; calls and messages can be made."""
        return None

    def on_client_stopped(self, client: ParleyClient) -> Awaitable[None] | None:
        """`terminate()` finished."""
        return None

    def on_client_failed(self, client: ParleyClient, error: ParleyError) -> Awaitable[None] | None:
        """The client could not start, or stopped on an error it cannot recover from."""
        return None

    def on_registration_credentials_required(
        self, client: ParleyClient, registration: ClientRegistration
    ) -> Awaitable[None] | None:
        """No application secret is configured: have the app server sign this user's
        registration, then call `registration.register(signature, sequence)` (or
        `registration.register_failed()`)."""
        return None

    def on_log_message(self, level: int, area: str, message: str) -> Awaitable[None] | None:
        """A log line of the SDK; `level` is a `logging` level (logging.INFO ...)."""
        return None


class ParleyClient:
    """A user on a device: registers once, then keeps a signaling connection to a gateway.

    Build one with `ParleyClient.builder()` (or `ParleyClient.from_env()`), enable
    capabilities, add listeners, `await start()`, and `await terminate()` when done.
    """

    def __init__(
        self,
        config: ClientConfig,
        *,
        clock: Clock | None = None,
        rng: random.Random | None = None,
    ) -> None:
        """`clock` and `rng` (the source of reconnect jitter) are for tests to inject."""
        self._config = config
        self._clock: Clock = clock or SystemClock()
        self._rng = rng or random.Random()
        self._capabilities = Capabilities()
        self._log = ClientLog(lambda: self._listeners)
        self._listeners: ListenerSet[ClientListener] = ListenerSet(self._log, "client")
        self._state = _State.NEW
        self._changed = asyncio.Event()
        self._session: Session | None = None
        self._http: aiohttp.ClientSession | None = None
        self._opening: asyncio.Future[pb.Welcome] | None = None
        self._stopping: asyncio.Future[None] | None = None
        self._features = FeatureDispatcher(self._log, self._link)
        self._presence = Presence(self._link("presence"))
        self._connections = 0  # welcomes so far, over every start
        self._listening = Listening(self._log, config.request_timeout)
        self._failure: ParleyError | None = None
        self._resume_stats = ResumeStats()
        self._audio = AudioController(config.media)
        self._video = VideoController(config.media)
        self._calls: CallClient | None = None  # plugged in when calling is used
        self._messages: MessageClient | None = None  # plugged in when messaging is used
        self._push: PushClient | None = None  # plugged in at start, or when push is used
        self._reports: CallReportUploader | None = None  # with the call client, if uploading

    # -- construction -----------------------------------------------------------------------

    @staticmethod
    def builder() -> ParleyClientBuilder[ParleyClient]:
        return ParleyClientBuilder(ParleyClient)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> ParleyClient:
        """A client configured from PARLEY_APPLICATION_KEY, PARLEY_APPLICATION_SECRET,
        PARLEY_USER_ID, PARLEY_ENVIRONMENT_HOST and PARLEY_PERSISTENCE_DIR."""
        return cls.builder().from_env(environ).build()

    # -- configuration ----------------------------------------------------------------------

    @property
    def config(self) -> ClientConfig:
        return self._config

    @property
    def user_id(self) -> str | None:
        return self._config.user_id

    @property
    def application_key(self) -> str | None:
        return self._config.application_key

    @property
    def media(self) -> bool:
        """False in signaling-only mode (`builder.media(False)`)."""
        return self._config.media

    @property
    def capabilities(self) -> Capabilities:
        """A copy of the capability switches (sent in every Hello)."""
        c = self._capabilities
        return Capabilities(
            c.calling, c.messaging, c.active_connection_in_background, c.managed_push
        )

    def set_support_calling(self, enabled: bool) -> None:
        self._capabilities.calling = _flag("calling", enabled)

    def set_support_messaging(self, enabled: bool) -> None:
        self._capabilities.messaging = _flag("messaging", enabled)

    def set_support_active_connection_in_background(self, enabled: bool) -> None:
        self._capabilities.active_connection_in_background = _flag(
            "active_connection_in_background", enabled
        )

    def set_support_managed_push(self, enabled: bool) -> None:
        self._capabilities.managed_push = _flag("managed_push", enabled)

    def check_configuration(self) -> None:
        """Raise ConfigurationError naming every setting that would keep the client from
        starting (the guide's checkManifest). `start()` runs the same checks."""
        check_configuration(self._config, self._capabilities)

    # -- listeners ---------------------------------------------------------------------------

    def add_client_listener(self, listener: ClientListener) -> None:
        self._listeners.add(listener)

    def remove_client_listener(self, listener: ClientListener) -> None:
        self._listeners.remove(listener)

    # -- state -------------------------------------------------------------------------------

    @property
    def _terminated(self) -> bool:
        return self._state is _State.STOPPED

    @property
    def is_started(self) -> bool:
        """Connected and welcomed by a gateway (False while reconnecting)."""
        return self._state is _State.STARTED

    @property
    def gateway_id(self) -> str | None:
        """The gateway replica serving this client (from Welcome)."""
        welcome = self._session.welcome if self._session else None
        return welcome.gateway_id if welcome is not None else None

    @property
    def session_id(self) -> str | None:
        welcome = self._session.welcome if self._session else None
        return welcome.session_id if welcome is not None else None

    @property
    def resume_stats(self) -> ResumeStats:
        """A copy of the counts of resumed sessions, new sessions after a refused resume, and
        replayed events dropped as already received."""
        return dataclasses.replace(self._resume_stats)

    @property
    def endpoint(self) -> Endpoint | None:
        """The gateway host of the current (or last) connection."""
        return self._session.endpoint if self._session else None

    async def wait_connected(self, timeout: float) -> None:
        """Return once the client is started (again, after a reconnect). Raises ParleyError:
        TIMEOUT if it is not within `timeout` seconds, the failure if the client failed,
        WRONG_STATE if it was terminated."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while self._state is not _State.STARTED:
            if self._state is _State.FAILED and self._failure is not None:
                raise self._failure
            if self._state in (_State.STOPPED, _State.FAILED):
                raise ParleyError(
                    ErrorCode.ERROR_CODE_WRONG_STATE,
                    f"the client is {self._state.value}",
                    ErrorType.OTHER,
                )
            changed = self._changed
            try:
                await asyncio.wait_for(changed.wait(), max(0.0, deadline - loop.time()))
            except TimeoutError:
                raise ParleyError(
                    ErrorCode.ERROR_CODE_TIMEOUT,
                    f"the client was not connected within {timeout:g} s "
                    f"(it is {self._state.value})",
                    ErrorType.NETWORK,
                ) from None

    # -- lifecycle --------------------------------------------------------------------------

    async def start(self) -> None:
        """Register (once per user and device), connect, and wait for the gateway's Welcome.

        Returns once `on_client_started` has been called. Raises ParleyError (after
        `on_client_failed`) if the client cannot start.
        """
        if self._state in _RUNNING:
            raise ParleyError(
                ErrorCode.ERROR_CODE_WRONG_STATE,
                f"the client is already {self._state.value}",
                ErrorType.OTHER,
            )
        if self._state is _State.STOPPED:
            raise terminated("; build a new one")
        try:
            endpoints = check_configuration(self._config, self._capabilities)
        except ParleyError as exc:
            await self._fail(exc)
            raise
        self._failure = None
        if self._capabilities.calling:
            _ = self.call_client  # incoming calls need the feature from the first frame
        if self._capabilities.messaging:
            _ = self.message_client  # so do incoming messages
        _ = self._push_client  # registrations are sent again on each new session
        self._set_state(_State.STARTING)
        session = self._new_session(endpoints)
        self._log.info(
            "client",
            f"starting user {self._config.user_id!r} of application "
            f"{self._config.application_key} on {', '.join(map(str, endpoints))}",
        )
        opening = self._opening = asyncio.ensure_future(session.open())
        try:
            await opening
        except asyncio.CancelledError:
            task = asyncio.current_task()
            if self._terminated and task is not None and not task.cancelling():
                raise terminated(" while starting") from None
            await self._release(goodbye=False)
            self._set_state(_State.FAILED)
            raise
        except ParleyError as exc:
            await self._fail(exc)
            raise
        except Exception as exc:
            error = ParleyError(ErrorCode.ERROR_CODE_INTERNAL, f"start failed: {exc!r}")
            await self._fail(error)
            raise error from exc
        finally:
            self._opening = None
        self._set_state(_State.STARTED)
        await self._listeners.emit("on_client_started", self)

    async def terminate(self) -> None:
        """Say Goodbye, close the connection, stop every task, then `on_client_stopped`.
        Calling it again (or concurrently) is harmless."""
        if self._stopping is not None:
            await asyncio.shield(self._stopping)
            return
        self._stopping = asyncio.get_running_loop().create_future()
        try:
            was_running = self._state in _RUNNING
            if self._calls is not None:  # hang up while the connection still takes frames
                await self._calls.terminate()
            if self._reports is not None:  # the reports of those calls, briefly
                await self._reports.flush(REPORTS_FLUSH_TIMEOUT)
                await self._reports.close()
            if self._messages is not None:  # acknowledgements still waiting go out
                await self._messages.terminate()
            self._set_state(_State.STOPPED)
            if self._opening is not None:
                self._opening.cancel()
            await self._release(goodbye=True)
            await self._listening.release(terminated())
            await self._features.close(terminated())
            if was_running:
                self._log.info("client", "stopped")
                await self._listeners.emit("on_client_stopped", self)
            await self._log.flush()
        finally:
            self._stopping.set_result(None)

    async def terminate_gracefully(self, timeout: float = DEFAULT_GRACEFUL_TIMEOUT) -> None:
        """Like `terminate()`, after the requests still waiting for replies (at most `timeout`)."""
        if self._session is not None and self._stopping is None:
            await self._session.wait_idle(timeout)
        await self.terminate()

    # -- active connection -------------------------------------------------------------------

    def start_listening_on_active_connection(self) -> asyncio.Future[None]:
        """Receive incoming calls and messages on this connection (re-applied after a
        reconnect). The returned future settles when the gateway took it; awaiting it is
        optional."""
        return self._want_listening(True)

    def stop_listening_on_active_connection(self) -> asyncio.Future[None]:
        return self._want_listening(False)

    @property
    def is_listening(self) -> bool:
        return bool(self._listening.wanted)

    # -- presence ----------------------------------------------------------------------------

    async def presence(
        self, user_ids: Iterable[str], timeout: float | None = None
    ) -> dict[str, UserPresence]:
        """Whether each user (of this application) has a listening device."""
        return await self._presence.query(user_ids, timeout)

    # -- calls -------------------------------------------------------------------------------

    @property
    def call_client(self) -> CallClient:
        """Calls to and from other users (the calling capability must be on to make them)."""
        if self._calls is None:
            if self._config.call_statistics:
                self._reports = CallReportUploader()
                self._features.add(self._reports)
            self._calls = CallClient(
                config=self._config,
                log=self._log,
                started=lambda: self._state is _State.STARTED,
                running=lambda: self._state in _RUNNING,
                session_id=lambda: self.session_id,
                audio=self._audio,
                video=self._video,
                reports=self._reports.submit if self._reports is not None else None,
            )
            self._features.add(self._calls)
        return self._calls

    # -- messages ----------------------------------------------------------------------------

    @property
    def message_client(self) -> MessageClient:
        """Instant messages to and from other users (the messaging capability must be on to
        send them)."""
        if self._messages is None:
            self._messages = MessageClient(
                config=self._config,
                log=self._log,
                started=lambda: self._state is not _State.NEW,
            )
            self._features.add(self._messages)
        return self._messages

    # -- push ------------------------------------------------------------------------------

    async def register_push_notification_data(self, data: bytes) -> None:
        """Register this device's push data (at most 1024 bytes) for push sent through the
        app's own server: the caller's or sender's app gets it, with a payload, when this user
        has no device online. Sent again on every new session; see
        `PushClient.register_push_notification_data`."""
        await self._push_client.register_push_notification_data(data)

    async def unregister_push_notification_data(self) -> None:
        """Forget this device's push data."""
        await self._push_client.unregister_push_notification_data()

    async def register_managed_push(self, token: PushToken) -> None:
        """Have the push service push to this device through its provider (FCM, APNs or Web
        Push) with `token`; needs `set_support_managed_push(True)` before `start()`."""
        await self._push_client.register_managed_push(token)

    async def unregister_managed_push(self) -> None:
        """Stop managed pushes to this device."""
        await self._push_client.unregister_managed_push()

    async def relay_remote_push_notification_payload(
        self, payload: bytes | str
    ) -> NotificationResult:
        """What a payload this device received by push is about (the guide's
        relayRemotePushNotificationPayload). A client that was never started is started first.

        A call payload claims the call: when it still waits for an answer it is offered to
        this device, and `on_incoming_call` follows. A message payload has the message client
        fetch what this device has not acknowledged, and `on_incoming_message` follows. A
        payload the push service refuses (forged, expired, another user's or application's,
        malformed) gives `is_valid` False and the `error`; NETWORK-type failures (not
        connected, timed out, a service unavailable) are raised as ParleyError, and so is a
        failure to start. TypeError for a payload that is not bytes or str."""
        data = payload_bytes(payload)
        if self._state is _State.NEW:
            await self.start()
        elif self._state is _State.STARTING:
            await self.wait_connected(self._config.request_timeout)
        relayed = await self._push_client.relay(data)
        if isinstance(relayed, ParleyError):
            self._log.info("push", f"a push payload was refused: {relayed}")
            return NotificationResult.invalid(relayed)
        content = relayed.WhichOneof("content")
        if content == "call":
            return await self._call_notification(relayed.call)
        if content == "message":
            message = relayed.message
            if self._capabilities.messaging:
                self.message_client.fetch_unacknowledged()
            else:
                self._log.info(
                    "push",
                    f"message {message.message_id} waits, but messaging is not supported; "
                    "it is not fetched",
                )
            return NotificationResult(
                is_valid=True,
                is_message=True,
                message_result=MessageNotificationResult(message.message_id, message.sender_id),
            )
        self._log.info("push", "a push payload is about nothing this client knows")
        return NotificationResult(is_valid=True)

    @property
    def audio_controller(self) -> AudioController:
        return self._audio

    @property
    def video_controller(self) -> VideoController:
        return self._video

    # -- features ----------------------------------------------------------------------------

    def add_feature(self, feature: Feature) -> None:
        """Plug a feature in (before or after `start()`): it gets the frames of its bodies and
        hears of every connection. ValueError if it cannot have its name or bodies."""
        self._features.add(feature)

    def feature(self, kind: type[F]) -> F:
        """The feature of this type that was added; LookupError if none was."""
        return self._features.get(kind)

    # -- internals ---------------------------------------------------------------------------

    @property
    def _push_client(self) -> PushClient:
        if self._push is None:
            self._push = PushClient(
                connected=lambda: (
                    self._state in _RUNNING and self._session is not None and self._session.is_up
                ),
                session_id=lambda: self.session_id,
                stopped=lambda: self._terminated,
            )
            self._features.add(self._push)
        return self._push

    async def _call_notification(self, call: push_pb.CallPush) -> NotificationResult:
        """Claim the call a payload is about, and say how it stands."""
        rang_out = 0 < call.ring_until_ms <= int(self._clock.time() * 1000)
        timed_out, canceled, error = rang_out, False, None
        if not self._capabilities.calling:
            self._log.info(
                "push",
                f"call {call.call_id} from {call.caller_user_id!r} waits, but calling is not "
                "supported; it is not claimed",
            )
        else:
            try:
                reply = await self.call_client.claim(call.call_id)
            except ParleyError as exc:
                if passing(exc):
                    raise
                if exc.error_code != ErrorCode.ERROR_CODE_NOT_FOUND:  # NOT_FOUND: it is gone
                    self._log.warning("push", f"call {call.call_id} could not be claimed: {exc}")
                    error = exc
            else:
                canceled = reply.end_cause == calls_pb.CALL_END_CAUSE_CANCELED
                timed_out = reply.end_cause in _RANG_OUT
        return NotificationResult(
            is_valid=True,
            is_call=True,
            call_result=CallNotificationResult(
                call_id=call.call_id,
                remote_user_id=call.caller_user_id,
                headers=dict(call.headers),
                is_timed_out=timed_out,
                is_call_canceled=canceled,
                is_video_offered=call.video,
            ),
            error=error,
        )

    def _link(self, name: str) -> FeatureLink:
        return FeatureLink(
            channel=self._live_session,
            config=self._config,
            capabilities=lambda: self.capabilities,
            log=self._log.area(name),
        )

    def _new_session(self, endpoints: tuple[Endpoint, ...]) -> Session:
        config = self._config
        self._http = aiohttp.ClientSession(
            # The SDK instead of aiohttp's name, for the operators' proxies and logs; none of
            # aiohttp's Accept headers: the answers are small JSON and WebSocket frames, and
            # every header of the upgrade stays in the gateway's memory for the session.
            headers={"User-Agent": client_version()},
            skip_auto_headers=("Accept", "Accept-Encoding"),
        )
        authenticator = Authenticator.for_config(
            config,
            endpoints,
            self._http,
            clock=self._clock,
            log=self._log,
            can_ask_app=self._can_ask_app,
            ask_app=self._ask_app,
        )
        session = Session(
            http=self._http,
            endpoints=endpoints,
            authenticator=authenticator,
            events=_Events(self),
            dispatch=self._features.dispatch,
            clock=self._clock,
            log=self._log,
            request_timeout=config.request_timeout,
            heartbeat_interval=config.heartbeat_interval,
            rng=self._rng,
            resume_stats=self._resume_stats,
        )
        self._session = session
        return session

    def _want_listening(self, listening: bool) -> asyncio.Future[None]:
        if self._state is _State.STOPPED:
            return self._listening.refuse(listening, terminated())
        session = self._session if self._state in _RUNNING else None
        return self._listening.want(listening, session.live_connection if session else None)

    def _can_ask_app(self) -> bool:
        return bool(
            self._listeners.implementing("on_registration_credentials_required", ClientListener)
        )

    async def _ask_app(self, registration: ClientRegistration) -> None:
        def listener_failed(exc: Exception) -> None:
            registration._fail(
                ParleyError(
                    ErrorCode.ERROR_CODE_INTERNAL,
                    f"on_registration_credentials_required raised {exc!r}",
                    ErrorType.OTHER,
                )
            )

        await self._listeners.emit(
            "on_registration_credentials_required", self, registration, on_error=listener_failed
        )

    def _live_session(self, body: str) -> Session:
        if self._session is None or self._state not in _RUNNING:
            raise ParleyError(
                ErrorCode.ERROR_CODE_WRONG_STATE,
                f"cannot send {body}: the client is {self._state.value}",
                ErrorType.OTHER,
            )
        return self._session

    def _set_state(self, state: _State) -> None:
        self._state = state
        changed, self._changed = self._changed, asyncio.Event()
        changed.set()

    async def _release(self, goodbye: bool) -> None:
        session = self._session
        if session is not None:
            await session.close(goodbye)
            await self._listening.release(terminated())
        if self._http is not None:
            await self._http.close()
            self._http = None

    async def _fail(self, error: ParleyError) -> None:
        self._log.error("client", f"failed: {error}")
        self._failure = error
        await self._release(goodbye=False)
        self._features.disconnected(error)
        self._set_state(_State.FAILED)
        await self._listeners.emit("on_client_failed", self, error)


class _Events:
    """The session's view of its client."""

    def __init__(self, client: ParleyClient) -> None:
        self._client = client

    def hello(self, access_token: str, resume_session_id: str, resume_from_event: int) -> pb.Hello:
        client = self._client
        return hello_message(
            client._config,
            client._capabilities,
            access_token,
            resume_session_id=resume_session_id,
            resume_from_event=resume_from_event,
            listening=client._listening.wanted is True,
        )

    async def restore(self, connection: Connection, welcome: pb.Welcome) -> None:
        await self._client._listening.apply(connection, held=welcome.listening)

    def connected(self, welcome: pb.Welcome, resumed: bool) -> None:
        client = self._client
        client._features.connected(
            Connected(
                reconnected=client._connections > 0,
                resumed=resumed,
                session_id=welcome.session_id,
                gateway_id=welcome.gateway_id,
            )
        )
        client._connections += 1

    async def session_down(self, reason: ParleyError) -> None:
        self._client._features.disconnected(reason)
        if self._client._state is _State.STARTED:
            self._client._set_state(_State.RECONNECTING)

    async def session_up(self) -> None:
        if self._client._state is _State.RECONNECTING:
            self._client._set_state(_State.STARTED)
            self._client._log.info("client", "reconnected")

    async def session_failed(self, error: ParleyError) -> None:
        if self._client._state in _RUNNING:
            await self._client._fail(error)


def _flag(name: str, value: object) -> bool:
    if not isinstance(value, bool):
        raise TypeError(f"set_support_{name} takes True or False, not {value!r}")
    return value
