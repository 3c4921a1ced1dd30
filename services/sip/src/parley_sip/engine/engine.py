"""``SipEngine``: one pjsua2 Endpoint on its own thread, driven from asyncio.

pjsua2 is created with no worker threads (``threadCnt = 0``) and ``mainThreadOnly``, so
every SIP callback runs inside ``libHandleEvents`` on the engine's thread, which pumps it
every 10 ms and runs asyncio's commands in between. Results and events cross back with
``call_soon_threadsafe``. Audio runs on pjsua's media clock (the null sound device).
"""

from __future__ import annotations

import asyncio
import ctypes
import gc
import itertools
import logging
import time
from collections.abc import Mapping
from typing import Any

import pjsua2 as pj

from parley_sip.engine import _pcm
from parley_sip.engine._thread import PjThread
from parley_sip.engine.leg import IncomingHandler, IncomingInvite, SipLeg
from parley_sip.engine.media import BridgePort
from parley_sip.engine.sipmsg import header_user, parse_headers, uri_of
from parley_sip.engine.types import Credentials, EngineConfig, SipEnd, SipError

log = logging.getLogger("parley_sip.engine")

# Codecs: G.711 first (what trunks speak), then G.722 and opus when the build has them.
_CODEC_PRIORITY = {"PCMU": 255, "PCMA": 254, "G722": 200, "opus": 150}
_LOG_LEVELS = {0: logging.ERROR, 1: logging.ERROR, 2: logging.WARNING, 3: logging.INFO}
_PORT_GRACE_S = 0.2  # a dropped port outlives its disconnection by a few media ticks
_STOP_WAIT_S = 3.0
_SLOT_WAIT_S = 0.5  # how long a dial waits for pjsua to free the slot of a call just ended


def _pjsua_library() -> Any:
    """The pjsua2 extension loaded as a C library (for the few pjsua calls SWIG lacks)."""
    try:
        from pjsua2 import _pjsua2

        return ctypes.CDLL(_pjsua2.__file__)
    except (ImportError, OSError, AttributeError):
        return None


class _LogWriter(pj.LogWriter):  # type: ignore[misc]
    def write(self, entry: Any) -> None:
        log.log(_LOG_LEVELS.get(entry.level, logging.DEBUG), "pjsua: %s", entry.msg.rstrip())


class _Account(pj.Account):  # type: ignore[misc]
    def __init__(self, engine: SipEngine) -> None:
        super().__init__()
        self.engine = engine

    def onIncomingCall(self, prm: Any) -> None:
        self.engine._on_incoming(self, prm)


class _Call(pj.Call):  # type: ignore[misc]
    """A pjsua2 call and the pjsua-side state of its leg (lives on the engine thread)."""

    def __init__(self, engine: SipEngine, acc: Any, leg_id: int, call_id: int = -1) -> None:
        if call_id == -1:
            super().__init__(acc)
        else:
            super().__init__(acc, call_id)
        self.engine = engine
        self.leg_id = leg_id
        self.port: BridgePort | None = None
        self.slot: Any = None  # the call's AudioMedia the port is connected to
        self.confirmed = False
        self.answered_sent = False
        self.local_hangup = False
        self.disconnected = False
        self.codec: str | None = None

    def onCallState(self, prm: Any) -> None:
        self.engine._on_call_state(self)

    def onCallMediaState(self, prm: Any) -> None:
        self.engine._on_media_state(self)

    def onDtmfDigit(self, prm: Any) -> None:
        self.engine._on_dtmf(self, str(prm.digit))


class SipEngine:
    """A SIP user agent: dial out, take calls in, bridge each leg's audio as 48 kHz PCM."""

    def __init__(self, config: EngineConfig | None = None) -> None:
        self.config = config or EngineConfig()
        if self.config.transport not in ("udp", "tcp"):
            raise ValueError(f"transport must be udp or tcp, not {self.config.transport!r}")
        self._thread: PjThread | None = None
        self._legs: dict[int, SipLeg] = {}  # loop side
        self._handler: IncomingHandler | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._ids = itertools.count(1)
        self._local_port = 0
        self._max_calls = 0
        self._conf_ports = 0
        self._stopped = False
        # pjsua thread side
        self._ep: Any = None
        self._writer: Any = None
        self._transport_id: Any = None
        self._account: _Account | None = None
        self._auth_accounts: dict[Credentials, _Account] = {}
        self._calls: dict[int, _Call] = {}
        self._graveyard: list[tuple[float, Any]] = []
        # Bridge ports of calls that ended, for the next calls (see _disconnect_port).
        self._free_ports: list[BridgePort] = []

    # -- properties --------------------------------------------------------------------
    @property
    def local_port(self) -> int:
        """The bound SIP port."""
        return self._local_port

    @property
    def live_legs(self) -> int:
        return sum(1 for leg in self._legs.values() if not leg.ended.done())

    @property
    def max_calls(self) -> int:
        """Concurrent calls this build allows (the config's wish capped by PJSUA_MAX_CALLS)."""
        return self._max_calls

    @property
    def conf_ports(self) -> int:
        """Ports of the conference bridge (each live leg uses two)."""
        return self._conf_ports

    @property
    def contact_host(self) -> str:
        return self.config.public_host or self.config.bind_host

    # -- lifecycle ---------------------------------------------------------------------
    async def start(self) -> None:
        if self._thread is not None:
            raise RuntimeError("the SIP engine was started already")
        loop = asyncio.get_running_loop()
        self._thread = PjThread(loop, self._setup, self._pump, self._teardown)
        await self._thread.start()
        log.info(
            "sip_engine_started port=%d transport=%s max_calls=%d",
            self._local_port,
            self.config.transport,
            self._max_calls,
        )

    async def stop(self) -> None:
        """Hang up live legs (BYE/CANCEL), drop media ports and destroy pjsua (idempotent)."""
        if self._stopped:
            return
        self._stopped = True
        for task in list(self._tasks):
            task.cancel()
        if self._thread is not None:
            await self._thread.stop()
        await asyncio.sleep(0)  # the legs' last events, queued before the thread ended
        for leg in self._legs.values():
            leg._end(SipEnd(0, "engine stopped", by_remote=False))
        self._legs.clear()

    def on_incoming(self, handler: IncomingHandler | None) -> None:
        """The coroutine given each INVITE received (none: answered 480)."""
        self._handler = handler

    async def dial(
        self,
        uri: str,
        *,
        headers: Mapping[str, str] | None = None,
        caller_id: str | None = None,
        credentials: Credentials | None = None,
    ) -> SipLeg:
        """Send an INVITE to ``uri``; returns once it went out (the leg then progresses)."""
        thread = self._running()
        if self.live_legs >= self._max_calls:
            # pjsua would refuse it (PJ_ETOOMANY); a call hung up here holds its slot until
            # its BYE or CANCEL is answered.
            raise SipError(f"the SIP stack holds its most calls ({self._max_calls})")
        leg = SipLeg(self, next(self._ids), outbound=True)
        self._legs[leg.id] = leg
        extra = dict(headers or {})
        try:
            await thread.submit(lambda: self._make_call(leg.id, uri, extra, caller_id, credentials))
        except BaseException:
            self._legs.pop(leg.id, None)
            raise
        return leg

    # -- leg operations (SipLeg's _Ops) ------------------------------------------------
    async def hangup(self, leg_id: int, code: int) -> None:
        await self._running().submit(lambda: self._hangup_call(leg_id, code))

    async def send_dtmf(self, leg_id: int, digits: str) -> None:
        def send() -> None:
            call = self._live_call(leg_id)
            prm = pj.CallSendDtmfParam()
            prm.digits = digits
            prm.method = pj.PJSUA_DTMF_METHOD_RFC2833
            _pj(lambda: call.sendDtmf(prm))

        await self._running().submit(send)

    async def answer(self, leg_id: int, code: int) -> None:
        def answer() -> None:
            call = self._live_call(leg_id)
            prm = pj.CallOpParam()
            prm.statusCode = code
            if code == 200:
                prm.opt.audioCount = 1
                prm.opt.videoCount = 0
                call.answered_sent = True
            _pj(lambda: call.answer(prm))

        await self._running().submit(answer)

    def _running(self) -> PjThread:
        if self._thread is None or self._stopped:
            raise SipError("the SIP engine is not running")
        return self._thread

    # -- on the pjsua thread -----------------------------------------------------------
    def _setup(self) -> None:
        cfg = self.config
        lib = _pjsua_library()
        if lib is not None:
            lib.pj_log_set_level(0)  # quiet libCreate; libInit sets the configured level
        ep = pj.Endpoint()
        self._ep = ep
        ep.libCreate()
        ep_cfg = pj.EpConfig()
        ua = ep_cfg.uaConfig
        ua.threadCnt = 0
        ua.mainThreadOnly = True
        ua.maxCalls = cfg.max_calls
        ua.userAgent = cfg.user_agent
        self._writer = _LogWriter()
        log_cfg = ep_cfg.logConfig
        log_cfg.writer = self._writer
        log_cfg.level = 2
        log_cfg.consoleLevel = 2
        log_cfg.msgLogging = 0
        log_cfg.decor = pj.PJ_LOG_HAS_SENDER
        med = ep_cfg.medConfig
        med.clockRate = cfg.bridge_clock_rate
        med.sndClockRate = cfg.bridge_clock_rate
        med.channelCount = 1
        med.audioFramePtime = 20
        med.ptime = 20
        med.noVad = True
        med.ecTailLen = 0
        # Two ports per call (its stream and its bridge port) plus the null device's.
        med.maxMediaPorts = 2 * cfg.max_calls + 8
        ep.libInit(ep_cfg)
        self._max_calls = int(lib.pjsua_call_get_max_count()) if lib is not None else 0
        self._max_calls = self._max_calls or cfg.max_calls
        self._conf_ports = int(lib.pjsua_conf_get_max_ports()) if lib is not None else 0
        _pcm.check_layout(pj)

        tcfg = pj.TransportConfig()
        tcfg.port = cfg.port
        tcfg.boundAddress = cfg.bind_host
        if cfg.public_host:
            tcfg.publicAddress = cfg.public_host
        kind = pj.PJSIP_TRANSPORT_UDP if cfg.transport == "udp" else pj.PJSIP_TRANSPORT_TCP
        self._transport_id = ep.transportCreate(kind, tcfg)
        info = ep.transportGetInfo(self._transport_id)
        self._local_port = int(str(info.localName).rsplit(":", 1)[1])
        ep.libStart()
        ep.audDevManager().setNullDev()
        for codec in ep.codecEnum2():
            name = str(codec.codecId).split("/", 1)[0]
            ep.codecSetPriority(codec.codecId, _CODEC_PRIORITY.get(name, 0))
        self._account = self._new_account(None)
        self._account.setDefault()

    def _new_account(self, creds: Credentials | None) -> _Account:
        cfg = self.config
        acc_cfg = pj.AccountConfig()
        transport = "" if cfg.transport == "udp" else ";transport=tcp"
        acc_cfg.idUri = f"sip:parley@{self.contact_host}:{self._local_port}{transport}"
        acc_cfg.sipConfig.transportId = self._transport_id
        acc_cfg.mediaConfig.lockCodecEnabled = False
        rtp = acc_cfg.mediaConfig.transportConfig
        rtp.boundAddress = cfg.bind_host
        if cfg.public_host:
            rtp.publicAddress = cfg.public_host
        if cfg.rtp_port_start:
            rtp.port = cfg.rtp_port_start
            rtp.portRange = 4 * max(self._max_calls, 1)
        acc_cfg.natConfig.iceEnabled = False
        acc_cfg.natConfig.sdpNatRewriteUse = 0
        acc_cfg.natConfig.contactRewriteUse = 0
        acc_cfg.natConfig.viaRewriteUse = 0
        if creds is not None:
            acc_cfg.sipConfig.authCreds.append(
                pj.AuthCredInfo("digest", creds.realm, creds.username, 0, creds.password)
            )
        acc = _Account(self)
        acc.create(acc_cfg)
        return acc

    def _pump(self, ms: int) -> None:
        if self._graveyard:
            now = time.monotonic()
            self._graveyard = [(t, obj) for t, obj in self._graveyard if t > now]
        self._ep.libHandleEvents(ms)

    def _bury(self, obj: Any, grace: float = _PORT_GRACE_S) -> None:
        self._graveyard.append((time.monotonic() + grace, obj))

    def _teardown(self) -> None:
        ep = self._ep
        if ep is None:
            return
        self._end_all_calls(ep)
        # Every port must be out of the bridge before libDestroy.
        time.sleep(_PORT_GRACE_S / 2)
        self._graveyard.clear()
        self._free_ports.clear()
        time.sleep(_PORT_GRACE_S / 2)  # the bridge's clock thread lets the removed ports go
        for acc in [self._account, *self._auth_accounts.values()]:
            if acc is not None:
                try:
                    acc.shutdown()
                except pj.Error:
                    pass
        self._account = None
        self._auth_accounts.clear()
        # pjsua2 objects caught in reference cycles die now, on this thread and before
        # libDestroy, not wherever the collector next runs (a fresh-clone test run crashed
        # in the main thread while it started the next engine).
        gc.collect()
        try:
            ep.libDestroy()
        finally:
            self._ep = None
            self._writer = None

    def _end_all_calls(self, ep: Any) -> None:
        # A helper of its own: no local may keep a call alive past libDestroy (its
        # destructor would then assert inside pjsua).
        for call in list(self._calls.values()):
            self._hangup_pj(call, 0)
        deadline = time.monotonic() + _STOP_WAIT_S
        while self._calls and time.monotonic() < deadline:
            ep.libHandleEvents(10)
        for call in list(self._calls.values()):
            self._disconnect_port(call)
            self._end_leg(call, SipEnd(0, "engine stopped", by_remote=False))
        self._calls.clear()

    def _make_call(
        self,
        leg_id: int,
        uri: str,
        headers: dict[str, str],
        caller_id: str | None,
        credentials: Credentials | None,
    ) -> None:
        acc = self._account
        if credentials is not None:
            acc = self._auth_accounts.get(credentials)
            if acc is None:
                acc = self._auth_accounts[credentials] = self._new_account(credentials)
        prm = pj.CallOpParam(True)
        prm.opt.audioCount = 1
        prm.opt.videoCount = 0
        hdrs = pj.SipHeaderVector()
        for name, value in headers.items():
            hdr = pj.SipHeader()
            hdr.hName = name
            hdr.hValue = value
            hdrs.append(hdr)
        prm.txOption.headers = hdrs
        if caller_id:
            prm.txOption.localUri = f"<sip:{caller_id}@{self.contact_host}>"
        # A call that just ended frees its slot once pjsua has closed its media, a moment
        # after its end was told: a dial refused for want of a slot meanwhile is tried again.
        deadline = time.monotonic() + _SLOT_WAIT_S
        while True:
            call = _Call(self, acc, leg_id)
            self._calls[leg_id] = call
            try:
                _pj(lambda: call.makeCall(uri, prm))  # noqa: B023 (called at once)
                return
            except SipError as exc:
                self._calls.pop(leg_id, None)  # never had a call slot: deleted with this frame
                if "PJ_ETOOMANY" not in str(exc) or time.monotonic() > deadline:
                    raise
            self._ep.libHandleEvents(5)

    def _live_call(self, leg_id: int) -> _Call:
        call = self._calls.get(leg_id)
        if call is None or call.disconnected:
            raise SipError("the SIP leg ended")
        return call

    def _hangup_call(self, leg_id: int, code: int) -> None:
        call = self._calls.get(leg_id)
        if call is not None and not call.disconnected:
            self._hangup_pj(call, code)

    def _hangup_pj(self, call: _Call, code: int) -> None:
        if call.local_hangup:
            return
        call.local_hangup = True
        prm = pj.CallOpParam()
        prm.statusCode = code
        try:
            call.hangup(prm)
        except pj.Error as exc:
            log.debug("sip_hangup_failed leg=%d reason=%s", call.leg_id, exc.info())

    def _on_incoming(self, acc: _Account, prm: Any) -> None:
        thread = self._thread
        assert thread is not None
        leg_id = next(self._ids)
        call = _Call(self, acc, leg_id, prm.callId)
        self._calls[leg_id] = call
        msg = str(prm.rdata.wholeMsg)
        start_line, headers = parse_headers(msg)
        request_uri = start_line.split(" ")[1] if " " in start_line else ""
        to_user = header_user(headers.get("to", "")) or header_user(request_uri)
        invite = {
            "to_user": to_user,
            "from_uri": uri_of(headers.get("from", "")),
            "request_uri": request_uri,
            "headers": {k: v for k, v in headers.items() if k.startswith("x-")},
        }
        if self._handler is None:
            self._hangup_pj(call, 480)
            return
        thread.to_loop(self._dispatch_incoming, leg_id, invite)

    def _on_call_state(self, call: _Call) -> None:
        ci = call.getInfo()
        state = ci.state
        thread = self._thread
        assert thread is not None
        if state == pj.PJSIP_INV_STATE_EARLY or ci.lastStatusCode in (180, 183):
            if call.slot is None or not call.confirmed:
                thread.to_loop(self._leg_event, call.leg_id, "progress", None)
        if state == pj.PJSIP_INV_STATE_CONFIRMED:
            call.confirmed = True
            self._maybe_answered(call)
        if state == pj.PJSIP_INV_STATE_DISCONNECTED and not call.disconnected:
            call.disconnected = True
            self._disconnect_port(call)
            code = int(ci.lastStatusCode)
            reason = str(ci.lastReason)
            self._end_leg(call, SipEnd(code, reason, by_remote=not call.local_hangup))
            # No reference is kept: the Call is deleted as this callback returns, as pjsua2
            # allows. Kept any longer, its destructor would clear the user data of its call
            # slot, which pjsua gives to the next call: that call would never hear of its
            # state again (its hang-up fails with "INVITE session already terminated").
            self._calls.pop(call.leg_id, None)

    def _on_media_state(self, call: _Call) -> None:
        if call.disconnected:
            return
        ci = call.getInfo()
        for i, media in enumerate(ci.media):
            if media.type != pj.PJMEDIA_TYPE_AUDIO:
                continue
            if media.status != pj.PJSUA_CALL_MEDIA_ACTIVE:
                continue
            am = call.getAudioMedia(i)
            if call.slot is not None and call.slot.getPortId() == am.getPortId():
                continue
            self._disconnect_port(call)
            thread = self._thread
            assert thread is not None
            leg = self._legs.get(call.leg_id)
            if leg is None:
                return
            port = self._free_ports.pop() if self._free_ports else BridgePort(None, "leg")
            port.pipe = leg.pipe
            port.startTransmit(am)
            am.startTransmit(port)
            call.port, call.slot = port, am
            try:
                si = call.getStreamInfo(i)
                call.codec = f"{si.codecName}/{si.codecClockRate}"
            except pj.Error:
                call.codec = None
            break
        self._maybe_answered(call)

    def _maybe_answered(self, call: _Call) -> None:
        if call.confirmed and call.slot is not None:
            thread = self._thread
            assert thread is not None
            thread.to_loop(self._leg_event, call.leg_id, "answered", call.codec)

    def _disconnect_port(self, call: _Call) -> None:
        port, slot = call.port, call.slot
        call.port = call.slot = None
        if port is None:
            return
        port.pipe = None
        for src, dst in ((port, slot), (slot, port)):
            try:
                src.stopTransmit(dst)
            except pj.Error:
                pass
        # Ports are kept for the next call, never destroyed while pjsua runs: the bridge
        # removes a port on its own clock thread, a tick after the port's memory would be
        # gone (a crash under load).
        self._free_ports.append(port)
        self._bury(slot)

    def _on_dtmf(self, call: _Call, digit: str) -> None:
        thread = self._thread
        assert thread is not None
        thread.to_loop(self._leg_event, call.leg_id, "dtmf", digit)

    def _end_leg(self, call: _Call, end: SipEnd) -> None:
        thread = self._thread
        assert thread is not None
        thread.to_loop(self._leg_event, call.leg_id, "ended", end)

    # -- back on the loop --------------------------------------------------------------
    def _leg_event(self, leg_id: int, kind: str, value: Any) -> None:
        leg = self._legs.get(leg_id)
        if leg is None:
            return
        if kind == "progress":
            leg._progress()
        elif kind == "answered":
            leg._answered(value)
        elif kind == "dtmf":
            leg._digit(value)
        elif kind == "ended":
            leg._end(value)
            del self._legs[leg_id]

    def _dispatch_incoming(self, leg_id: int, invite: dict[str, Any]) -> None:
        leg = SipLeg(self, leg_id, outbound=False)
        self._legs[leg_id] = leg
        incoming = IncomingInvite(leg, **invite)
        handler = self._handler
        if handler is None or self._stopped:
            self._spawn(leg.hangup(480))
            return
        self._spawn(self._run_handler(handler, incoming))

    async def _run_handler(self, handler: IncomingHandler, incoming: IncomingInvite) -> None:
        try:
            await handler(incoming)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("sip_incoming_handler_failed to=%s", incoming.to_user)
            if not incoming._answered:
                await incoming.leg.hangup(500)

    def _spawn(self, coro: Any) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)


def _pj(fn: Any) -> Any:
    """Run a pjsua2 call, turning its error into a SipError (no pj object crosses over)."""
    try:
        return fn()
    except pj.Error as exc:
        reason = str(exc.info())
    raise SipError(reason)  # outside the handler: the pj.Error (and its frames) is gone
