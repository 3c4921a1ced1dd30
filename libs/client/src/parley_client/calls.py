"""`CallClient`: app-to-app calls, audio and video, and calls to phone numbers and SIP
addresses (the guide's CallClient), a client feature.

It receives the call events (CallIncoming, CallProgressing, CallAnswered, CallEnded,
CallSignalReceived) and hands each to its `Call`; it places calls (StartCall) and keeps the
ICE servers of the session (GetIceServers, asked before the first call of a session and kept
until they expire).

A reconnect of the signalling connection leaves calls alone: media flows peer to peer. When
the session could not be resumed, the service's events for calls still being set up went to
the old session, so those calls end (FAILURE, a NETWORK error); answered calls go on. A
hang-up that could not be sent while disconnected is sent after the reconnect.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Awaitable, Callable, Coroutine, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from parley_client.audio import AudioController
from parley_client.call import HANGUP_ACK_TIMEOUT, Call
from parley_client.call_details import CallDirection, CallEndCause, CallKind
from parley_client.call_observer import CallObserver
from parley_client.conference import ConferenceEvent
from parley_client.config import ClientConfig
from parley_client.errors import ErrorType, ParleyError, terminated
from parley_client.features import Connected, Feature
from parley_client.listeners import ListenerSet
from parley_client.logs import ClientLog
from parley_client.media import IceServer, Media, MediaSettings, SignallingMedia
from parley_client.trace_context import TraceParent
from parley_client.video import VideoController
from parley_protocol import validation
from parley_protocol.errors import ErrorCode
from parley_protocol.errors import ParleyError as ProtocolError
from parley_protocol.pb import calls as calls_pb
from parley_protocol.pb import client as pb
from parley_protocol.pb import stats as stats_pb

if TYPE_CHECKING:
    from aiortc.mediastreams import MediaStreamTrack

# ICE servers are asked again this long before they expire.
ICE_REFRESH_MARGIN_MS = 30_000
# How long terminate() lets the media of ended calls close.
MEDIA_CLOSE_TIMEOUT = 2.0
# The kinds of call that ring a user's device: from another user, a phone, a conference
# calling the user into its room.
_INCOMING_KINDS = {
    calls_pb.CALL_KIND_APP: CallKind.APP,
    calls_pb.CALL_KIND_PHONE: CallKind.PHONE,
    calls_pb.CALL_KIND_CONFERENCE: CallKind.CONFERENCE,
}


class CallClientListener:
    """Events of the call client. A no-op here; override it as a plain method or coroutine."""

    def on_incoming_call(self, call_client: CallClient, call: Call) -> Awaitable[None] | None:
        """Another user calls: add a CallListener to `call`, then `call.answer()` or
        `call.hangup()`. The caller hears that it rings at once."""
        return None


@dataclass
class _IceCache:
    session_id: str
    servers: tuple[IceServer, ...]
    expires_at_ms: int  # 0: for the whole session


class CallClient(Feature):
    """Places and receives calls: `client.call_client`."""

    name = "calls"
    bodies = frozenset(
        {
            "call_incoming",
            "call_progressing",
            "call_answered",
            "call_ended",
            "call_signal_received",
            "conference_changed",
        }
    )

    def __init__(
        self,
        *,
        config: ClientConfig,
        log: ClientLog,
        started: Callable[[], bool],
        running: Callable[[], bool],
        session_id: Callable[[], str | None],
        audio: AudioController,
        video: VideoController,
        reports: Callable[[stats_pb.UploadCallReport], None] | None = None,
    ) -> None:
        """`reports` takes the report of every ended call (None: none is uploaded)."""
        self._config = config
        self._client_log = log
        self._started = started
        self._running = running
        self._session = session_id
        self._audio = audio
        self._video = video
        self._listeners: ListenerSet[CallClientListener] = ListenerSet(log, "calls")
        self._calls: dict[str, Call] = {}
        self._observers: dict[str, CallObserver] = {}
        self._reports = reports
        self._tasks: set[asyncio.Task[None]] = set()
        # Hang-ups not sent while disconnected, with their calls' traceparents.
        self._unsent: dict[str, tuple[calls_pb.HangupCall, str]] = {}
        self._ice: _IceCache | None = None
        self._ice_lock = asyncio.Lock()
        self._closed = False
        video.bind(self._remote_video, self._video_paused)

    # -- the app's side ------------------------------------------------------------------------

    def add_call_client_listener(self, listener: CallClientListener) -> None:
        self._listeners.add(listener)

    def remove_call_client_listener(self, listener: CallClientListener) -> None:
        self._listeners.remove(listener)

    @property
    def calls(self) -> list[Call]:
        """The calls that have not ended, oldest first."""
        return list(self._calls.values())

    def get_call(self, call_id: str) -> Call | None:
        return self._calls.get(call_id)

    def call_user(self, user_id: str, headers: Mapping[str, str] | None = None) -> Call:
        """Call `user_id` (audio). Returns at once (INITIATING); follow the call with a
        CallListener. ParleyError at once for an invalid user id or headers (at most 1024
        bytes of UTF-8) or when the client is not started."""
        return self._call(user_id, headers, video=False)

    def call_user_video(self, user_id: str, headers: Mapping[str, str] | None = None) -> Call:
        """Like `call_user`, with video both ways (the video controller's capture source)."""
        return self._call(user_id, headers, video=True)

    def call_phone_number(self, number: str, headers: Mapping[str, str] | None = None) -> Call:
        """Call a phone number in E.164 (e.g. "+14155550101") through the deployment's SIP
        trunk; the test number +46000000000 answers with a voice prompt and hangs up, with no
        trunk and no credit needed. Returns at once; a call the account cannot pay for one
        minute of fails with INSUFFICIENT_CREDIT. ParleyError at once for a number that is
        not E.164 (INVALID_PHONE_NUMBER) or invalid headers."""
        try:
            validation.validate_phone_number(number, "number")
        except ProtocolError as exc:
            raise ParleyError.from_protocol(exc) from None
        return self._place(number, headers, video=False, kind=CallKind.PHONE)

    def call_sip(self, sip_identity: str, headers: Mapping[str, str] | None = None) -> Call:
        """Call a SIP address "user@server"; `headers` (names starting "x-") go on the
        INVITE. SIP errors end the call with FAILURE (DENIED for 486 and 603) and an error of
        type SIP in `call.details.error`, its status code in `sip_status`. ParleyError at
        once for an address not of the form user@server or a header not starting "x-"."""
        try:
            validation.validate_sip_identity(sip_identity, "sip_identity")
            validation.validate_sip_headers(dict(headers or {}), "headers")
        except ProtocolError as exc:
            raise ParleyError.from_protocol(exc) from None
        return self._place(sip_identity, headers, video=False, kind=CallKind.SIP)

    def call_conference(self, conference_id: str, headers: Mapping[str, str] | None = None) -> Call:
        """Join the conference room `conference_id` (at most 64 characters; rooms are the
        application's own: the same id in another application is another room). Everyone
        in the room hears everyone else. `call.participants` says who is in it, and
        `CallListener.on_conference_changed` tells each join, leave, mute and unmute. A
        participant the application removes (REST) ends with REMOVED. ParleyError at once
        for an invalid id (INVALID_CONFERENCE_ID) or headers."""
        try:
            validation.validate_conference_id(conference_id, "conference_id")
        except ProtocolError as exc:
            raise ParleyError.from_protocol(exc) from None
        return self._place(conference_id, headers, video=False, kind=CallKind.CONFERENCE)

    async def claim(self, call_id: str) -> calls_pb.ClaimCallReply:
        """Ask for a call this device learnt of by push (a relayed payload): when it still
        waits for an answer, the service offers it to this device too (CallIncoming follows,
        then on_incoming_call). Returns the service's answer, which says how the call ended if
        it has. ParleyError for an invalid call id, when the client is not connected, or the
        service's refusal (NOT_FOUND: no such call any more)."""
        try:
            validation.validate_call_id(call_id)
        except ProtocolError as exc:
            raise ParleyError.from_protocol(exc) from None
        if self._closed:
            raise terminated()
        # A trace of its own: the call offered here (CallIncoming) continues it.
        reply = await self.link.request(
            calls_pb.ClaimCall(call_id=call_id),
            calls_pb.ClaimCallReply,
            traceparent=str(TraceParent.new()),
        )
        self.link.log.info(
            f"call {call_id} claimed: {calls_pb.CallPhase.Name(reply.phase)}"
            + (", offered here" if reply.offered else "")
        )
        return reply

    # -- Feature -------------------------------------------------------------------------------

    async def on_frame(self, envelope: pb.Envelope) -> None:
        if self._closed:
            return
        body = envelope.WhichOneof("body")
        if body == "call_incoming":
            self._incoming(envelope.call_incoming, TraceParent.parse(envelope.traceparent))
            return
        message = getattr(envelope, body or "")
        call = self._calls.get(message.call_id)
        if call is None:
            self.link.log.debug(f"{body} of call {message.call_id}, which is not here; dropped")
            return
        if body == "call_progressing":
            call.on_progressing()
        elif body == "call_answered":
            call.on_answered(envelope.call_answered.answer_sdp)
        elif body == "call_ended":
            ended = envelope.call_ended
            error = (
                ParleyError.from_protocol(ProtocolError.from_proto(ended.error))
                if ended.HasField("error") and ended.error.code
                else None
            )
            call.on_ended(CallEndCause.from_wire(ended.cause), error, ended.ended_at_ms)
        elif body == "call_signal_received":
            call.on_signal(envelope.call_signal_received.signal)
        elif body == "conference_changed":
            event = ConferenceEvent.from_wire(envelope.conference_changed)
            if event is not None:
                call.on_conference_changed(event)

    async def on_connected(self, connected: Connected) -> None:
        if connected.reconnected and not connected.resumed:
            lost = ParleyError(
                ErrorCode.ERROR_CODE_UNAVAILABLE,
                "the signalling session was lost while the call was set up",
                ErrorType.NETWORK,
            )
            for call in self.calls:
                if not call.answered:
                    call.end_now(CallEndCause.FAILURE, lost)
                    message = calls_pb.HangupCall(
                        call_id=call.call_id,
                        cause=CallEndCause.FAILURE.value,
                        error=lost.to_protocol().to_proto(),
                    )
                    self._unsent[call.call_id] = (message, call.traceparent)
        unsent, self._unsent = self._unsent, {}
        for message, traceparent in unsent.values():
            self.spawn(self._resend(message, traceparent), "parley calls hangup")

    async def on_disconnected(self, reason: ParleyError) -> None:
        if self._running():
            return  # the client reconnects; calls go on
        for call in self.calls:
            call.end_now(CallEndCause.FAILURE, reason)
        await self._finish_calls(list(self._calls.values()))

    async def terminate(self) -> None:
        """End every call (telling the service, when it can), close their media, tell their
        listeners. The client calls this first when it terminates."""
        if self._closed:
            return
        self._closed = True
        calls = self.calls
        await asyncio.gather(*(self._hang_up(call) for call in calls if call.placed))
        for call in calls:
            call.end_now(call.expected_cause())
        await self._finish_calls(calls)
        tasks = [task for task in self._tasks if task is not asyncio.current_task()]
        if tasks:
            _, late = await asyncio.wait(tasks, timeout=MEDIA_CLOSE_TIMEOUT)
            for task in late:
                task.cancel()
            await asyncio.gather(*late, return_exceptions=True)

    # -- CallHost ------------------------------------------------------------------------------

    @property
    def client_log(self) -> ClientLog:
        return self._client_log

    @property
    def media_on(self) -> bool:
        return self._config.media

    @property
    def inactive_timeout(self) -> float:
        return self._config.inactive_timeout

    async def make_media(self, call: Call) -> Media:
        if self._config.media_factory is not None:
            made: Media = self._config.media_factory(call)
            return made
        if not self._config.media:
            return SignallingMedia()
        from parley_client.media import PeerMedia

        settings = await self._media_settings(call.traceparent)

        def local_tracks() -> list[MediaStreamTrack]:
            tracks = [self._audio.local_track()]
            if call.is_video:
                tracks.append(self._video.local_track_for_call())
            return tracks

        return PeerMedia(settings, call, local_tracks, call.is_video)

    def spawn(self, work: Coroutine[Any, Any, None], name: str) -> None:
        task = asyncio.get_running_loop().create_task(self._run(work), name=name)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def call_established(self, call: Call) -> None:
        observer = self._observers.get(call.call_id)
        if observer is not None:
            observer.established()

    def call_ended(self, call: Call) -> None:
        if self._calls.get(call.call_id) is call:
            del self._calls[call.call_id]
        observer = self._observers.pop(call.call_id, None)
        if observer is None:
            return
        try:
            statistics = observer.ended()
            call.record_statistics(statistics)
            if self._reports is not None:
                self._reports(statistics.to_proto())
        except Exception as exc:  # never in the way of ending the call
            self.link.log.error(f"call {call.call_id}: no statistics: {exc!r}")

    def unsent_hangup(self, message: calls_pb.HangupCall, traceparent: str) -> None:
        if not self._closed:
            self._unsent[message.call_id] = (message, traceparent)

    # -- internals -----------------------------------------------------------------------------

    def _call(self, user_id: str, headers: Mapping[str, str] | None, video: bool) -> Call:
        try:
            validation.validate_user_id(user_id, "user_id")
        except ProtocolError as exc:
            raise ParleyError.from_protocol(exc) from None
        return self._place(user_id, headers, video, CallKind.APP)

    def _place(
        self, callee: str, headers: Mapping[str, str] | None, video: bool, kind: CallKind
    ) -> Call:
        chosen = dict(headers or {})
        try:
            validation.validate_headers(chosen, "headers")
        except ProtocolError as exc:
            raise ParleyError.from_protocol(exc) from None
        if self._closed:
            raise terminated()
        if not self._started():
            raise ParleyError(
                ErrorCode.ERROR_CODE_WRONG_STATE,
                "calls can be made once the client is started (and connected)",
                ErrorType.OTHER,
            )
        call = Call(
            self,
            call_id=str(uuid.uuid4()),
            direction=CallDirection.OUTGOING,
            remote_user_id=callee,
            headers=chosen,
            video=video,
            kind=kind,
        )
        self._calls[call.call_id] = call
        self._observe(call)
        what = "video" if video else "audio"
        self.link.log.info(f"calling {kind.value} {callee!r} ({what}): {call.call_id}")
        self.spawn(call.place(), f"parley call {call.call_id} place")
        return call

    def _incoming(self, incoming: calls_pb.CallIncoming, trace: TraceParent | None) -> None:
        """A call offered to this device; it continues the trace it came in (`trace`), or
        starts one."""
        if incoming.call_id in self._calls:
            return
        kind = _INCOMING_KINDS.get(incoming.kind, CallKind.APP)
        try:
            validation.validate_call_id(incoming.call_id)
            if kind is CallKind.CONFERENCE:
                validation.validate_conference_id(incoming.caller_user_id, "caller_user_id")
            else:
                validation.validate_user_id(incoming.caller_user_id, "caller_user_id")
        except ProtocolError as exc:
            self.link.log.warning(f"an incoming call was dropped: {exc}")
            return
        call = Call(
            self,
            call_id=incoming.call_id,
            direction=CallDirection.INCOMING,
            remote_user_id=incoming.caller_user_id,
            headers=dict(incoming.headers),
            video=incoming.video,
            offer_sdp=incoming.offer_sdp,
            started_time=incoming.started_at_ms / 1000 if incoming.started_at_ms else None,
            kind=kind,
            trace=trace,
        )
        self._calls[call.call_id] = call
        self._observe(call)
        self.link.log.info(f"incoming call {call.call_id} from {call.remote_user_id!r}")
        self.spawn(self._ring(call), f"parley call {call.call_id} ring")
        call.on_incoming(lambda: self._listeners.emit("on_incoming_call", self, call))

    def _observe(self, call: Call) -> None:
        self._observers[call.call_id] = CallObserver(
            call, self._config.call_quality, self.link.log, media=self._config.media
        )

    async def _ring(self, call: Call) -> None:
        try:
            await self.link.request(
                calls_pb.RingCall(call_id=call.call_id),
                calls_pb.CallAck,
                traceparent=call.traceparent,
            )
        except ParleyError as exc:
            self.link.log.info(f"call {call.call_id}: RingCall refused: {exc}")

    async def _hang_up(self, call: Call) -> None:
        message = calls_pb.HangupCall(call_id=call.call_id)
        try:
            await self.link.request(message, calls_pb.CallAck, HANGUP_ACK_TIMEOUT, call.traceparent)
        except ParleyError as exc:
            self.link.log.info(f"call {call.call_id}: hang-up not acknowledged ({exc})")

    async def _resend(self, message: calls_pb.HangupCall, traceparent: str) -> None:
        try:
            await self.link.request(message, calls_pb.CallAck, traceparent=traceparent)
        except ParleyError as exc:
            self.link.log.info(f"call {message.call_id}: hang-up not delivered: {exc}")

    async def _finish_calls(self, calls: list[Call]) -> None:
        await asyncio.gather(*(call.finish() for call in calls))

    async def _run(self, work: Coroutine[Any, Any, None]) -> None:
        try:
            await work
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            self.link.log.error(f"{asyncio.current_task()!r} failed: {exc!r}")

    async def _media_settings(self, traceparent: str) -> MediaSettings:
        config = self._config
        return MediaSettings(
            ice_servers=await self._ice_servers(traceparent),
            ice_transport_policy=config.ice_transport_policy,
            host_addresses=config.ice_host_addresses,
        )

    async def _ice_servers(self, traceparent: str) -> tuple[IceServer, ...]:
        """The session's ICE servers; asked (in the trace of the call that needs them)
        when not known yet or about to expire."""
        async with self._ice_lock:
            now_ms = int(time.time() * 1000)
            session_id = self._session() or ""
            cached = self._ice
            if (
                cached is not None
                and cached.session_id == session_id
                and (
                    cached.expires_at_ms == 0
                    or now_ms < cached.expires_at_ms - ICE_REFRESH_MARGIN_MS
                )
            ):
                return cached.servers
            try:
                reply = await self.link.request(
                    calls_pb.GetIceServers(), calls_pb.IceServers, traceparent=traceparent
                )
            except ParleyError as exc:
                self.link.log.warning(f"no ICE servers ({exc}); host candidates only")
                return ()
            servers = tuple(
                IceServer(tuple(s.urls), s.username, s.credential) for s in reply.servers
            )
            self._ice = _IceCache(session_id, servers, reply.expires_at_ms)
            return servers

    def _remote_video(self) -> MediaStreamTrack | None:
        for call in reversed(self.calls):
            if call.remote_video_track is not None:
                return call.remote_video_track
        return None

    def _video_paused(self, paused: bool) -> None:
        for call in self.calls:
            call.signal_video_paused(paused)
