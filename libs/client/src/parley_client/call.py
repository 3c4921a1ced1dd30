"""One call (the guide's Call): its state machine, details, listeners and operations.

States go forward only: INITIATING -> PROGRESSING (outgoing: a callee device rings) ->
ESTABLISHED -> ENDED, and any state -> ENDED. An outgoing call is ESTABLISHED once the
callee's answer is applied and media flows both ways (the peer connection is connected and
the first remote audio frame arrived); an incoming call once its answer was accepted by the
service and media flows likewise. In signalling-only mode media "flows" as soon as the
descriptions are exchanged. An incoming call stays INITIATING while it rings.

Listeners hear of one call in the order things happened, one at a time, on a task of the
call's own (listeners.Notices); `wait_established` and `wait_ended` return after the
listeners were told.

Media restarts: aiortc has no ICE restart, so a call whose peer connection failed gets a new
one. The caller renegotiates (a new RTCPeerConnection, its offer in SendCallSignal); the
callee answers from a new peer connection of its own (SendCallSignal answer_sdp); then each
side closes its old connection and media resumes on the new one. `restart_media()` does the
same on request, from either side; should both sides offer at once, the caller's offer wins.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable, Coroutine, Sequence
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

from google.protobuf.message import Message

from parley_client.call_details import (
    CallDetails,
    CallDirection,
    CallEndCause,
    CallKind,
    CallState,
    PushPair,
)
from parley_client.call_report import CallStatistics
from parley_client.conference import ConferenceEvent, Participant
from parley_client.errors import ErrorType, ParleyError
from parley_client.features import FeatureLink
from parley_client.futures import app_future, settle
from parley_client.listeners import ListenerSet, Notices
from parley_client.logs import AreaLog, ClientLog
from parley_client.media import Media, SdpError
from parley_client.quality import CallQualityWarning
from parley_client.trace_context import TraceParent
from parley_protocol import validation
from parley_protocol.errors import ErrorCode
from parley_protocol.errors import ParleyError as ProtocolError
from parley_protocol.pb import calls as calls_pb

if TYPE_CHECKING:
    from aiortc.mediastreams import MediaStreamTrack

    from parley_client.tracks import RemoteTrack

R = TypeVar("R", bound=Message)

# How long a hang-up waits for the service's ack, and then for its CallEnded (which carries
# the cause), before the call ends locally with the cause it would expect.
HANGUP_ACK_TIMEOUT = 1.0
HANGUP_GRACE = 0.5
# How long listeners of an ended call may take before the client stops waiting for them.
NOTICES_TIMEOUT = 1.0


class CallListener:
    """Events of one call. Every method is a no-op here; override the ones you need, as plain
    methods or as coroutines."""

    def on_call_progressing(self, call: Call) -> Awaitable[None] | None:
        """An outgoing call rings on a callee device."""
        return None

    def on_call_established(self, call: Call) -> Awaitable[None] | None:
        """The call was answered and media flows both ways."""
        return None

    def on_call_ended(self, call: Call) -> Awaitable[None] | None:
        """`call.details` says why (end_cause, error)."""
        return None

    def on_should_send_push_notification(
        self, call: Call, push_pairs: Sequence[PushPair]
    ) -> Awaitable[None] | None:
        """No callee device was reached: the app may wake the callee by push."""
        return None

    def on_video_track_added(self, call: Call) -> Awaitable[None] | None:
        """The far side's video arrives (`call.remote_video_track`)."""
        return None

    def on_video_track_paused(self, call: Call) -> Awaitable[None] | None:
        return None

    def on_video_track_resumed(self, call: Call) -> Awaitable[None] | None:
        return None

    def on_dtmf_received(self, call: Call, digits: str) -> Awaitable[None] | None:
        """The far side sent DTMF digits (an extension of the guide's listener)."""
        return None

    def on_conference_changed(self, call: Call, event: ConferenceEvent) -> Awaitable[None] | None:
        """A conference call's room changed: someone joined, left, or was muted or unmuted
        (`call.participants` is the room after it)."""
        return None

    def on_call_quality_warning(
        self, call: Call, warning: CallQualityWarning
    ) -> Awaitable[None] | None:
        """The media of an established call got worse (`warning.event` TRIGGERED: high
        round-trip time, jitter or packet loss, or no audio received) or better again
        (RECOVERED)."""
        return None


class CallHost(Protocol):
    """What a call needs of its call client."""

    @property
    def link(self) -> FeatureLink: ...

    @property
    def client_log(self) -> ClientLog: ...

    @property
    def media_on(self) -> bool: ...

    @property
    def inactive_timeout(self) -> float: ...

    async def make_media(self, call: Call) -> Media: ...

    def spawn(self, work: Coroutine[Any, Any, None], name: str) -> None: ...

    def call_established(self, call: Call) -> None: ...

    def call_ended(self, call: Call) -> None: ...

    def unsent_hangup(self, message: calls_pb.HangupCall, traceparent: str) -> None: ...


class Call:
    """A call to or from another user of the application, or to a phone number, a SIP
    address or a conference room (`kind`; `remote_user_id` is then the number, the address
    or the conference id). Made by the call client (`call_user`, `call_phone_number`,
    `call_sip`, `call_conference`, or an incoming call); the app does not construct one."""

    def __init__(
        self,
        host: CallHost,
        *,
        call_id: str,
        direction: CallDirection,
        remote_user_id: str,
        headers: dict[str, str],
        video: bool,
        offer_sdp: str = "",
        started_time: float | None = None,
        kind: CallKind = CallKind.APP,
        trace: TraceParent | None = None,
    ) -> None:
        self._host = host
        self._log: AreaLog = host.link.log
        self.call_id = call_id
        self.direction = direction
        self.remote_user_id = remote_user_id
        self.kind = kind
        self._headers = dict(headers)
        self._video = video
        self._offer_sdp = offer_sdp
        self._state = CallState.INITIATING
        self._listeners: ListenerSet[CallListener] = ListenerSet(host.client_log, "calls")
        self._notices = Notices(host.client_log, "calls", f"parley call {call_id}")
        self._lock = asyncio.Lock()  # media operations, one at a time
        self._media: Media | None = None
        self._pending: Media | None = None  # our restart offer's media, until its answer
        self._answered = False
        self._answered_at = 0.0
        self._hanging_up = False
        self._placed = asyncio.Event()  # StartCall answered (or never sent); set if incoming
        if direction is CallDirection.INCOMING:
            self._placed.set()
        self._ended = asyncio.Event()
        self._told_established = False
        self._told_ended = False
        self._told = asyncio.Event()
        self._answering: asyncio.Future[None] | None = None
        self._restarts: list[asyncio.Future[None]] = []
        self._hangups: list[asyncio.Future[None]] = []
        self._started_time = started_time if started_time is not None else time.time()
        self._progressed_time: float | None = None
        self._established_time: float | None = None
        self._ended_time: float | None = None
        self._end_cause: CallEndCause | None = None
        self._error: ParleyError | None = None
        self._remote_audio: RemoteTrack | None = None
        self._remote_video: RemoteTrack | None = None
        if host.media_on:
            from parley_client.tracks import RemoteTrack

            self._remote_audio = RemoteTrack("audio")
            self._remote_video = RemoteTrack("video") if video else None
        self._video_added = False
        self._remote_video_paused = False
        self._last_frame = 0.0
        self._watchdog: asyncio.Task[None] | None = None
        self._participants: tuple[Participant, ...] = ()
        self._statistics: CallStatistics | None = None
        # The trace every frame of this call carries (a new one unless continued).
        self._trace = trace or TraceParent.new()

    def __repr__(self) -> str:
        return (
            f"<Call {self.call_id} {self.direction.name} {self.remote_user_id!r} "
            f"{self._state.name}>"
        )

    # -- what the app reads ----------------------------------------------------------------

    @property
    def state(self) -> CallState:
        return self._state

    @property
    def participants(self) -> tuple[Participant, ...]:
        """A conference call's room as last told (empty for other calls, and until the
        first change arrives)."""
        return self._participants

    @property
    def headers(self) -> dict[str, str]:
        """The headers the caller set (a copy)."""
        return dict(self._headers)

    @property
    def is_video(self) -> bool:
        return self._video

    @property
    def details(self) -> CallDetails:
        established, ended = self._established_time, self._ended_time
        return CallDetails(
            started_time=self._started_time,
            progressed_time=self._progressed_time,
            established_time=established,
            ended_time=ended,
            duration=max(0.0, ended - established) if established and ended else 0.0,
            end_cause=self._end_cause,
            error=self._error,
            is_video_offered=self._video,
        )

    @property
    def statistics(self) -> CallStatistics | None:
        """What the call was and how its media fared (what the client uploads to the stats
        service); None until the call has ended (it is set before `on_call_ended`)."""
        return self._statistics

    @property
    def remote_audio_track(self) -> MediaStreamTrack | None:
        """The far side's audio (an aiortc track: read it with `await recv()`); the same track
        across media restarts; None in signalling-only mode."""
        return self._remote_audio

    @property
    def remote_video_track(self) -> MediaStreamTrack | None:
        """The far side's video in a video call; None otherwise and in signalling-only mode."""
        return self._remote_video

    @property
    def remote_video_paused(self) -> bool:
        """The far side said it paused its video (and has not resumed it since)."""
        return self._remote_video_paused

    @property
    def trace_id(self) -> str:
        """The call's trace (32 hex digits) in the deployment's tracing: the caller starts
        it, and the callee's devices continue it when the deployment records it (otherwise
        each side has its own); find the call set-up's spans under it."""
        return self._trace.trace_id

    @property
    def traceparent(self) -> str:
        """What this call's frames carry in `Envelope.traceparent`."""
        return str(self._trace)

    def add_call_listener(self, listener: CallListener) -> None:
        self._listeners.add(listener)

    def remove_call_listener(self, listener: CallListener) -> None:
        self._listeners.remove(listener)

    async def wait_established(self, timeout: float) -> None:
        """Return once the call is established (and its listeners were told). ParleyError:
        the call's error, or WRONG_STATE, if it ended first; TIMEOUT after `timeout` s."""
        await self._wait(lambda: self._told_established or self._told_ended, timeout)
        if not self._told_established:
            if self._error is not None:
                raise self._error
            cause = self._end_cause.name if self._end_cause else "?"
            raise ParleyError(
                ErrorCode.ERROR_CODE_WRONG_STATE,
                f"the call ended ({cause}) before it was established",
                ErrorType.OTHER,
            )

    async def wait_ended(self, timeout: float) -> CallDetails:
        """Return the details once the call has ended (and its listeners were told);
        ParleyError TIMEOUT after `timeout` s."""
        await self._wait(lambda: self._told_ended, timeout)
        return self.details

    # -- what the app does -----------------------------------------------------------------

    def answer(self) -> asyncio.Future[None]:
        """Answer an incoming call. The future (awaiting it is optional) settles when the
        service took the answer, or fails with why not (then the call has ended)."""
        if self.direction is CallDirection.OUTGOING:
            raise ParleyError(
                ErrorCode.ERROR_CODE_WRONG_STATE, "an outgoing call cannot be answered"
            )
        if self._answering is not None:
            return self._answering
        future = self._answering = app_future()
        if self._over():
            future.set_exception(self._gone("answered"))
            return future
        self._host.spawn(self._answer(), f"parley call {self.call_id} answer")
        return future

    def hangup(self) -> asyncio.Future[None]:
        """Decline (incoming, before answering), cancel (outgoing, before the answer) or end
        the call. Media stops at once; the future settles when the call has ended (with the
        cause the service names, or the expected one if it does not answer promptly)."""
        future = app_future()
        if self._told_ended:
            future.set_result(None)
            return future
        self._hangups.append(future)
        if not self._hanging_up and self._state is not CallState.ENDED:
            self._hanging_up = True
            cause = self._expected_cause()
            self._stop_media()
            self._host.spawn(self._hangup(cause), f"parley call {self.call_id} hangup")
        return future

    def send_dtmf(self, digits: str) -> asyncio.Future[None]:
        """Send DTMF digits (0-9, *, #, A-D) to the far side of an established call."""
        try:
            validation.validate_dtmf(digits, "digits")
        except ProtocolError as exc:
            raise ParleyError.from_protocol(exc) from None
        if self._state is not CallState.ESTABLISHED:
            raise ParleyError(
                ErrorCode.ERROR_CODE_WRONG_STATE,
                f"DTMF needs an established call; this one is {self._state.value}",
                ErrorType.OTHER,
            )
        return self._signal(calls_pb.CallSignal(dtmf=digits))

    def restart_media(self) -> asyncio.Future[None]:
        """Renegotiate media on a new peer connection (see the module's doc); the future
        settles when the new connection is in place."""
        future = app_future()
        if not self._answered or self._state is CallState.ENDED or self._hanging_up:
            future.set_exception(
                ParleyError(
                    ErrorCode.ERROR_CODE_WRONG_STATE,
                    "media can be restarted only in an answered call",
                    ErrorType.OTHER,
                )
            )
            return future
        self._restarts.append(future)
        self._host.spawn(self._restart(), f"parley call {self.call_id} restart")
        return future

    # -- for the call client, not for apps: events from the service, and its questions -------

    def on_incoming(self, tell: Callable[[], Awaitable[None] | None]) -> None:
        self._notices.put(tell)

    def on_progressing(self) -> None:
        if self._state is CallState.INITIATING and self.direction is CallDirection.OUTGOING:
            self._state = CallState.PROGRESSING
            self._progressed_time = time.time()
            self._tell("on_call_progressing", self)

    def on_answered(self, answer_sdp: str) -> None:
        self._host.spawn(self._accept_answer(answer_sdp), f"parley call {self.call_id} answered")

    def on_ended(self, cause: CallEndCause, error: ParleyError | None, ended_at_ms: int) -> None:
        self._end(cause, error, ended_at_ms)

    def on_conference_changed(self, event: ConferenceEvent) -> None:
        self._participants = event.participants
        self._tell("on_conference_changed", self, event)

    def on_signal(self, signal: calls_pb.CallSignal) -> None:
        kind = signal.WhichOneof("kind")
        if kind == "offer_sdp":
            self._host.spawn(self._remote_offer(signal.offer_sdp), f"parley call {self.call_id}")
        elif kind == "answer_sdp":
            self._host.spawn(self._remote_answer(signal.answer_sdp), f"parley call {self.call_id}")
        elif kind == "video_paused":
            self._remote_video_paused = signal.video_paused
            paused = "on_video_track_paused" if signal.video_paused else "on_video_track_resumed"
            self._tell(paused, self)
        elif kind == "dtmf":
            self._tell("on_dtmf_received", self, signal.dtmf)

    def on_quality_warning(self, warning: CallQualityWarning) -> None:
        self._tell("on_call_quality_warning", self, warning)

    def record_statistics(self, statistics: CallStatistics) -> None:
        self._statistics = statistics

    @property
    def media(self) -> Media | None:
        """The media in use (None before the offer or answer, and once ended)."""
        return self._media

    def should_push(self, push_pairs: Sequence[PushPair]) -> None:
        self._tell("on_should_send_push_notification", self, list(push_pairs))

    def end_now(self, cause: CallEndCause, error: ParleyError | None = None) -> None:
        """End at once (the client is going away, or lost the call's session)."""
        self._end(cause, error)

    def expected_cause(self) -> CallEndCause:
        return self._expected_cause()

    @property
    def answered(self) -> bool:
        return self._answered

    @property
    def placed(self) -> bool:
        return self._placed.is_set()

    async def finish(self) -> None:
        """Wait (briefly) for the ended call's listeners."""
        await self._notices.finish(NOTICES_TIMEOUT)

    def signal_video_paused(self, paused: bool) -> None:
        if self._answered and self._video and self._state is not CallState.ENDED:
            self._signal(calls_pb.CallSignal(video_paused=paused))

    # -- placing an outgoing call ------------------------------------------------------------

    async def place(self) -> None:
        """Make the offer, send StartCall, and follow its reply (the call client's task)."""
        try:
            await self._place()
        finally:
            self._placed.set()

    async def _place(self) -> None:
        async with self._lock:
            try:
                media = await self._host.make_media(self)
                offer = await media.offer()
            except ParleyError as exc:
                self._end(CallEndCause.FAILURE, exc)
                return
            except Exception as exc:
                self._log.error(f"call {self.call_id}: no offer: {exc!r}")
                self._end(CallEndCause.FAILURE, _internal(f"the offer could not be made: {exc}"))
                return
            if self._hanging_up or self._state is CallState.ENDED:
                await media.close()
                self._end(CallEndCause.CANCELED)  # nothing was sent: nobody else to tell
                return
            self._media = media
        start = calls_pb.StartCall(
            call_id=self.call_id, video=self._video, headers=self._headers, offer_sdp=offer
        )
        if self.kind is CallKind.PHONE:
            start.phone_number = self.remote_user_id
        elif self.kind is CallKind.SIP:
            start.sip_uri = self.remote_user_id
        elif self.kind is CallKind.CONFERENCE:
            start.conference_id = self.remote_user_id
        else:
            start.callee_user_id = self.remote_user_id
        try:
            reply = await self._request(start, calls_pb.StartCallReply)
        except ParleyError as exc:
            self._log.info(f"call {self.call_id} to {self.remote_user_id!r} failed: {exc}")
            self._end(CallEndCause.FAILURE, exc)
            return
        if reply.devices_reached == 0:
            pairs = [PushPair(p.push_data, p.push_payload) for p in reply.push_pairs]
            self.should_push(pairs)

    async def _accept_answer(self, answer_sdp: str) -> None:
        async with self._lock:
            media = self._media
            if self._state is CallState.ENDED or self._answered or media is None:
                return
            try:
                await media.accept_answer(answer_sdp)
            except SdpError as exc:
                self._media_failed(exc, "callee", "answer_sdp")
                return
            self._answered_now()

    # -- answering an incoming call ----------------------------------------------------------

    async def _answer(self) -> None:
        future = self._answering
        assert future is not None
        async with self._lock:
            if self._over():
                settle([future], self._gone("answered"))
                return
            try:
                media = await self._host.make_media(self)
            except Exception as exc:
                error = _internal(f"the answer could not be made: {exc!r}")
                self._give_up(CallEndCause.FAILURE, error)
                settle([future], error)
                return
            try:
                answer = await media.answer(self._offer_sdp)
            except SdpError as exc:
                await media.close()
                settle([future], self._media_failed(exc, "caller", "offer_sdp"))
                return
            if self._over():
                await media.close()
                settle([future], self._gone("answered"))
                return
            self._media = media
        message = calls_pb.AnswerCall(call_id=self.call_id, answer_sdp=answer)
        try:
            await self._request(message, calls_pb.CallAck)
        except ParleyError as exc:
            # Answered elsewhere, or ended: the service tells the cause in CallEnded.
            self._log.info(f"call {self.call_id}: the answer was refused: {exc}")
            settle([future], exc)
            self._stop_media()
            await self._wait_ended(HANGUP_GRACE)
            self._end(CallEndCause.FAILURE, exc)
            return
        settle([future], None)
        if not self._over():
            self._answered_now()

    # -- both sides --------------------------------------------------------------------------

    def _answered_now(self) -> None:
        self._answered = True
        self._answered_at = asyncio.get_running_loop().time()
        if self._host.media_on and self._watchdog is None:
            self._watchdog = asyncio.get_running_loop().create_task(
                self._watch(), name=f"parley call {self.call_id} watchdog"
            )
        self._check_established()

    def _check_established(self) -> None:
        media = self._media
        if (
            self._state in (CallState.ESTABLISHED, CallState.ENDED)
            or not self._answered
            or self._hanging_up
            or media is None
            or not media.flowing
        ):
            return
        self._state = CallState.ESTABLISHED
        self._established_time = time.time()
        self._last_frame = asyncio.get_running_loop().time()
        self._host.call_established(self)
        self._tell("on_call_established", self)
        self._notices.put(self._established_told)

    async def _watch(self) -> None:
        """End an established call that gets no media for the inactive timeout, and an
        answered one whose media never flows within it."""
        timeout = self._host.inactive_timeout
        loop = asyncio.get_running_loop()
        while self._state is not CallState.ENDED:
            await asyncio.sleep(min(1.0, timeout / 4))
            now = loop.time()
            if self._hanging_up:
                return
            if self._state is CallState.ESTABLISHED:
                if now - self._last_frame > timeout:
                    error = ParleyError(
                        ErrorCode.ERROR_CODE_TIMEOUT,
                        f"no media arrived for {timeout:g} s",
                        ErrorType.NETWORK,
                    )
                    self._give_up(CallEndCause.INACTIVE, error)
                    return
            elif now - self._answered_at > timeout:
                error = ParleyError(
                    ErrorCode.ERROR_CODE_TIMEOUT,
                    f"media did not flow within {timeout:g} s of the answer",
                    ErrorType.NETWORK,
                )
                self._give_up(CallEndCause.FAILURE, error)
                return

    async def _restart(self) -> None:
        async with self._lock:
            if self._over() or not self._answered:
                settle(self._take_restarts(), self._gone("restarted"))
                return
            if self._pending is not None:
                return  # an offer is out; its answer settles every waiter
            try:
                media = await self._host.make_media(self)
                offer = await media.offer()
            except ParleyError as exc:
                settle(self._take_restarts(), exc)
                return
            self._pending = media
        self._log.info(f"call {self.call_id}: restarting media (new offer)")
        try:
            await self._send(calls_pb.CallSignal(offer_sdp=offer))
        except ParleyError as exc:
            async with self._lock:
                if self._pending is media:
                    self._pending = None
            await media.close()
            settle(self._take_restarts(), exc)

    async def _remote_offer(self, offer_sdp: str) -> None:
        async with self._lock:
            if self._over() or not self._answered:
                return
            if self._pending is not None:
                if self.direction is CallDirection.OUTGOING:
                    self._log.info(f"call {self.call_id}: both offered; the caller's offer wins")
                    return
                pending, self._pending = self._pending, None
                self._host.spawn(pending.close(), "parley call media close")
            media = await self._host.make_media(self)
            try:
                answer = await media.answer(offer_sdp)
            except SdpError as exc:
                await media.close()
                self._media_failed(exc, _other(self.direction), "offer_sdp")
                return
            self._replace_media(media)
        try:
            await self._send(calls_pb.CallSignal(answer_sdp=answer))
        except ParleyError as exc:
            self._log.warning(f"call {self.call_id}: the new answer was not sent: {exc}")

    async def _remote_answer(self, answer_sdp: str) -> None:
        async with self._lock:
            pending = self._pending
            if pending is None or self._state is CallState.ENDED:
                self._log.info(f"call {self.call_id}: an answer to no offer of ours; ignored")
                return
            try:
                await pending.accept_answer(answer_sdp)
            except SdpError as exc:
                self._media_failed(exc, _other(self.direction), "answer_sdp")
                return
            self._pending = None
            self._replace_media(pending)

    def _replace_media(self, media: Media) -> None:
        old, self._media = self._media, media
        if old is not None:
            self._host.spawn(old.close(), "parley call media close")
        settle(self._take_restarts(), None)
        self._log.info(f"call {self.call_id}: media restarted")

    def _take_restarts(self) -> list[asyncio.Future[None]]:
        restarts, self._restarts = self._restarts, []
        return restarts

    # -- media events (MediaEvents) ------------------------------------------------------------

    def media_state(self, media: Media, state: str) -> None:
        if media is not self._media or self._state is CallState.ENDED:
            return
        if state == "connected":
            self._check_established()
        elif state == "failed" and not self._hanging_up and self._answered:
            if self.direction is CallDirection.OUTGOING:
                self._log.warning(f"call {self.call_id}: the media connection failed")
                self._host.spawn(self._restart(), f"parley call {self.call_id} restart")

    def media_track(self, media: Media, kind: str, track: MediaStreamTrack) -> None:
        # From the current media, or one being set up (its tracks come while it answers).
        remote = self._remote_audio if kind == "audio" else self._remote_video
        if remote is None or self._state is CallState.ENDED:
            track.stop()
            return
        remote.attach(track)
        if kind == "video" and not self._video_added:
            self._video_added = True
            self._tell("on_video_track_added", self)

    def media_frame(self, media: Media, kind: str) -> None:
        self._last_frame = asyncio.get_running_loop().time()
        if kind == "audio" and media is self._media and self._state is not CallState.ESTABLISHED:
            self._check_established()

    # -- ending --------------------------------------------------------------------------------

    def _expected_cause(self) -> CallEndCause:
        if self._answered:
            return CallEndCause.HUNG_UP
        if self.direction is CallDirection.OUTGOING:
            return CallEndCause.CANCELED
        return CallEndCause.DENIED

    async def _hangup(self, cause: CallEndCause) -> None:
        await self._placed.wait()
        if self._state is CallState.ENDED:
            return
        message = calls_pb.HangupCall(call_id=self.call_id)
        try:
            await self._request(message, calls_pb.CallAck, HANGUP_ACK_TIMEOUT)
        except ParleyError as exc:
            self._log.info(f"call {self.call_id}: hang-up not acknowledged ({exc})")
            if exc.type is ErrorType.NETWORK:
                self._host.unsent_hangup(message, self.traceparent)
        else:
            await self._wait_ended(HANGUP_GRACE)
        self._end(cause)

    def _give_up(self, cause: CallEndCause, error: ParleyError) -> None:
        """End with a cause this side found (FAILURE, INACTIVE) and tell the service why."""
        self._log.warning(f"call {self.call_id} ends: {cause.name}: {error.message}")
        placed = self._placed.is_set()
        self._end(cause, error)
        if placed:
            message = calls_pb.HangupCall(
                call_id=self.call_id, cause=cause.value, error=error.to_protocol().to_proto()
            )
            self._host.spawn(self._tell_service(message), f"parley call {self.call_id} hangup")

    async def _tell_service(self, message: calls_pb.HangupCall) -> None:
        try:
            await self._request(message, calls_pb.CallAck, HANGUP_ACK_TIMEOUT)
        except ParleyError as exc:
            self._log.info(f"call {self.call_id}: hang-up not acknowledged ({exc})")
            if exc.type is ErrorType.NETWORK:
                self._host.unsent_hangup(message, self.traceparent)

    def _media_failed(self, exc: SdpError, whose: str, field: str) -> ParleyError:
        error = ParleyError(
            ErrorCode.ERROR_CODE_INVALID_ARGUMENT,
            f"the {whose}'s session description: {exc}",
            ErrorType.OTHER,
            field,
        )
        self._give_up(CallEndCause.FAILURE, error)
        return error

    def _end(
        self, cause: CallEndCause, error: ParleyError | None = None, ended_at_ms: int = 0
    ) -> None:
        if self._state is CallState.ENDED:
            return
        self._state = CallState.ENDED
        self._end_cause = cause
        self._error = error
        self._ended_time = ended_at_ms / 1000 if ended_at_ms > 0 else time.time()
        if self._established_time is not None:
            self._ended_time = max(self._ended_time, self._established_time)
        self._ended.set()
        if self._watchdog is not None and self._watchdog is not asyncio.current_task():
            self._watchdog.cancel()
        self._stop_media()
        for remote in (self._remote_audio, self._remote_video):
            if remote is not None:
                remote.stop()
        gone = error or self._gone("")
        if self._answering is not None:
            settle([self._answering], gone)
        settle(self._take_restarts(), gone)
        self._host.call_ended(self)
        self._log.info(
            f"call {self.call_id} ended: {cause.name}" + (f" ({error})" if error else "")
        )
        self._tell("on_call_ended", self)
        self._notices.put(self._ended_told)
        self._notices.close()

    def _stop_media(self) -> None:
        for media in (self._media, self._pending):
            if media is not None:
                self._host.spawn(media.close(), "parley call media close")
        self._media = self._pending = None

    # -- helpers -------------------------------------------------------------------------------

    def _signal(self, signal: calls_pb.CallSignal) -> asyncio.Future[None]:
        future = app_future()

        async def send() -> None:
            try:
                await self._send(signal)
            except ParleyError as exc:
                self._log.info(f"call {self.call_id}: signal not delivered: {exc}")
                settle([future], exc)
            else:
                settle([future], None)

        self._host.spawn(send(), f"parley call {self.call_id} signal")
        return future

    async def _send(self, signal: calls_pb.CallSignal) -> None:
        message = calls_pb.SendCallSignal(call_id=self.call_id, signal=signal)
        await self._request(message, calls_pb.CallAck)

    async def _request(self, message: Message, reply: type[R], timeout: float | None = None) -> R:
        """A request of this call, in its trace."""
        return await self._host.link.request(message, reply, timeout, self.traceparent)

    def _tell(self, method: str, *args: object) -> None:
        self._notices.put(lambda: self._listeners.emit(method, *args))

    def _established_told(self) -> None:
        self._told_established = True
        self._changed()

    def _ended_told(self) -> None:
        self._told_ended = True
        settle(self._hangups, None)
        self._hangups = []
        self._changed()

    def _changed(self) -> None:
        told, self._told = self._told, asyncio.Event()
        told.set()

    async def _wait(self, done: Callable[[], bool], timeout: float) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while not done():
            told = self._told
            try:
                await asyncio.wait_for(told.wait(), max(0.0, deadline - loop.time()))
            except TimeoutError:
                raise ParleyError(
                    ErrorCode.ERROR_CODE_TIMEOUT,
                    f"call {self.call_id} is still {self._state.value} after {timeout:g} s",
                    ErrorType.OTHER,
                ) from None

    async def _wait_ended(self, timeout: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._ended.wait(), timeout)

    def _over(self) -> bool:
        """Ended, or hanging up (a method: the state changes across awaits)."""
        return self._state is CallState.ENDED or self._hanging_up

    def _gone(self, what: str) -> ParleyError:
        cause = f" ({self._end_cause.name})" if self._end_cause else ""
        doing = f"; it cannot be {what}" if what else ""
        return ParleyError(
            ErrorCode.ERROR_CODE_WRONG_STATE,
            f"the call has ended{cause}{doing}",
            ErrorType.OTHER,
        )


def _other(direction: CallDirection) -> str:
    return "callee" if direction is CallDirection.OUTGOING else "caller"


def _internal(message: str) -> ParleyError:
    return ParleyError(ErrorCode.ERROR_CODE_INTERNAL, message, ErrorType.OTHER)
