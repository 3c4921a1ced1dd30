"""The gateway's live state and lifecycle: sessions, the sweep, presence refresh, drain.

Per-connection work that depends on time (Hello timeout, heartbeat timeout, token expiry)
is checked by ONE sweep over all sessions, and presence entries are refreshed by ONE loop,
so an idle connection costs no task beyond aiohttp's own handler. No shared loop waits
for a client: writes never block (see session.py), and closes from the sweep or a drain
are bounded (a drain takes at most drain_timeout_seconds, dropping what is left).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools

from aiohttp import web
from google.protobuf.message import DecodeError
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription

from parley.v1 import presence_pb2
from parley_gateway.forward import Forwarder
from parley_gateway.metrics import CONNECTIONS, DELIVERIES, SESSIONS, frames
from parley_gateway.peers import Peers
from parley_gateway.presence import PresenceStore
from parley_gateway.resume import Resumer
from parley_gateway.routing import Router
from parley_gateway.session import ACTIVE, AWAITING_HELLO, CLOSING, Session
from parley_gateway.settings import GatewaySettings
from parley_gateway.tokens import TokenVerifier
from parley_protocol import framing, subjects
from parley_protocol.clock import Clock, now_ms
from parley_protocol.errors import ErrorCode, ParleyError
from parley_service import tasks
from parley_service.app_label import app_label
from parley_service.assets import JetStreamAssets
from parley_service.logs import get_logger
from parley_service.presence import PresenceReader

log = get_logger("parley.gateway")

# How long a closing handshake may take before the socket is dropped.
WS_CLOSE_TIMEOUT_SECONDS = 2.0
# A full sweep (every session looked at for silence and expired tokens) at least this often.
FULL_SWEEP_SECONDS = 5.0
# Pings the sweep writes before it lets the loop's other work in.
PING_BATCH = 512
NO_EXPIRY = 2**63
# Part of the drain time kept for the sessions' clean-up (routing, presence) after the closes.
DRAIN_CLEANUP_SHARE = 0.25
# Part of the drain time given to routed requests waiting for their services' replies.
DRAIN_REPLIES_SHARE = 0.25


class Gateway:
    def __init__(
        self,
        settings: GatewaySettings,
        clock: Clock,
        verifier: TokenVerifier,
        presence: PresenceStore,
        router: Router,
        peers: Peers,
        forwarder: Forwarder,
        presence_reader: PresenceReader,
        assets: JetStreamAssets,
        resumer: Resumer,
    ) -> None:
        self.assets = assets
        self.resumer = resumer
        self.window = resumer.window
        self._takeovers: Subscription | None = None
        self.settings = settings
        self.clock = clock
        self.verifier = verifier
        self.presence = presence
        self.presence_reader = presence_reader
        self.router = router
        self.peers = peers
        self.forwarder = forwarder
        peers.connections_count = lambda: len(self.sessions)
        self.gateway_id = settings.gateway_id
        self.sessions: dict[str, Session] = {}
        # The earliest token expiry among the sessions (as of the last full sweep, and the
        # tokens taken since): the sweep looks at every session once it has passed.
        self._next_token_expiry_ms = NO_EXPIRY
        # Sign-ins running at once (PARLEY_MAX_SIGN_INS_IN_FLIGHT); the others wait here.
        self.sign_ins = asyncio.Semaphore(settings.max_sign_ins_in_flight)
        self.draining = False
        self.port = 0  # the bound public port, known after start()
        self._runner: web.AppRunner | None = None
        self._loops: list[asyncio.Task[None]] = []
        self._closing: set[asyncio.Task[None]] = set()  # closes started by the sweep
        self._empty = asyncio.Event()
        self._empty.set()

    @property
    def url(self) -> str:
        return f"http://{self.settings.gateway_host}:{self.port}"

    async def start(self, app: web.Application) -> None:
        """Open presence and routing, fetch the JWKS, then listen and start the loops.

        On failure everything started so far is stopped again (no listener is left behind).
        """
        try:
            await self._start(app)
        except BaseException:
            await self.stop()
            raise

    async def _start(self, app: web.Application) -> None:
        await self.presence.open(self.assets)
        self.assets.on_restored(self._rewrite_presence)
        await self.window.open(self.assets)
        self._takeovers = await self.presence.nc.subscribe(
            subjects.gateway_takeover(self.gateway_id), cb=self._on_takeover
        )
        try:
            await self.verifier.refresh()
        except ParleyError as err:
            # Auth may start after us; the first Hello fetches the JWKS again.
            log.warning("jwks_unavailable_at_start", error=str(err))
        await self.router.start(self._held_overflow)
        await self.peers.start()
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=2.0)
        await self._runner.setup()
        site = web.TCPSite(
            self._runner,
            self.settings.gateway_host,
            self.settings.gateway_port,
            backlog=self.settings.listen_backlog,
        )
        await site.start()
        self.port = int(self._runner.addresses[0][1])
        self._loops = [
            asyncio.create_task(self._sweep_loop(), name="gateway-sweep"),
            asyncio.create_task(self._presence_loop(), name="gateway-presence"),
        ]
        log.info(
            "gateway_listening",
            gateway_id=self.gateway_id,
            host=self.settings.gateway_host,
            port=self.port,
        )

    # Sessions ---------------------------------------------------------------------------

    def opened(self, ws: web.WebSocketResponse, transport: asyncio.Transport | None) -> Session:
        session = Session(ws, transport, self.clock.monotonic(), self.settings.session_frame_burst)
        self.sessions[session.connection_id] = session
        self._empty.clear()
        CONNECTIONS.inc()
        return session

    @property
    def full(self) -> bool:
        return len(self.sessions) >= self.settings.max_connections

    async def route(self, session: Session) -> None:
        """Route the user's device events here (presence follows once the session is known).

        Device events arriving from here on are held until `session.release()`, called
        once the Welcome is written, so none reaches the client before its Welcome.
        """
        session.held = []
        session.state = ACTIVE
        session.signed_in = True
        SESSIONS.labels(app_label(session.application_key)).inc()
        await self.router.add(session)

    async def _on_takeover(self, msg: Msg) -> None:
        """A session held here was resumed on another connection: close the old one."""
        takeover = presence_pb2.SessionTakeover()
        try:
            takeover.ParseFromString(msg.data)
        except DecodeError:
            log.warning("takeover_unreadable")
            return
        for old in self.router.sessions_of(takeover.application_key, takeover.user_id):
            if (
                old.session_id == takeover.session_id
                and old.connection_id != takeover.connection_id
                and not old.taken_over
            ):
                old.taken_over = True  # the new connection owns the presence entry now
                err = ParleyError(
                    ErrorCode.ERROR_CODE_WRONG_STATE,
                    "this session was resumed on another connection",
                )
                self.close_soon(old, err, framing.CLOSE_TAKEN_OVER)
                log.info("session_taken_over", by_gateway=takeover.gateway_id)

    def _held_overflow(self, session: Session) -> None:
        DELIVERIES.labels("held_overflow").inc()
        err = ParleyError(
            ErrorCode.ERROR_CODE_UNAVAILABLE,
            "too many events arrived while the session was signing in; reconnect",
        )
        self.close_soon(session, err, framing.CLOSE_TRY_AGAIN_LATER)

    async def closed(self, session: Session) -> None:
        """Undo everything a session set up (called once, when its handler ends)."""
        session.state = CLOSING
        session.held = None
        try:
            if session.signed_in:
                session.signed_in = False
                SESSIONS.labels(app_label(session.application_key)).dec()
                await self.router.remove(session)
                await self._leave_presence(session)
        finally:
            # Listed until cleaned up, so a drain waits for the clean-up too.
            if self.sessions.pop(session.connection_id, None) is not None:
                CONNECTIONS.dec()
            if not self.sessions:
                self._empty.set()

    async def _leave_presence(self, session: Session) -> None:
        """Offline now: the entry goes (Goodbye, or no resume window), or stays marked
        disconnected as the record a resume checks; a taken-over session leaves it alone."""
        if session.taken_over:
            return
        try:
            if session.leaving or not self.window.enabled:
                await self.presence.delete(session)
            else:
                await self.presence.disconnected(session, now_ms(self.clock))
        except Exception as exc:  # the entry expires by itself
            log.warning("presence_leave_failed", error=str(exc))

    def close_soon(self, session: Session, err: ParleyError, close_code: int) -> None:
        """Send `err` and close, from outside the session's handler (no waiting here)."""
        if session.state == CLOSING:
            return
        session.state = CLOSING
        task = asyncio.create_task(session.fail(err, 0, close_code))
        self._closing.add(task)
        task.add_done_callback(self._closing.discard)

    # Loops ------------------------------------------------------------------------------

    def token_taken(self, expires_at_ms: int) -> None:
        """A session took a token (sign-in or refresh): the sweep after it expires looks at
        every session, so no session outlives its token by more than a round."""
        self._next_token_expiry_ms = min(self._next_token_expiry_ms, expires_at_ms)

    def _sweep_interval(self) -> float:
        s = self.settings
        return max(0.05, min(1.0, s.hello_timeout_seconds / 4, s.heartbeat_timeout_seconds / 4))

    def _full_sweep_every(self, interval: float) -> int:
        """Sweep rounds per full pass over every session: a tenth of the heartbeat timeout,
        at most FULL_SWEEP_SECONDS (5 s at the defaults); the rounds between only look at
        the connections opened within the Hello timeout."""
        seconds = min(FULL_SWEEP_SECONDS, self.settings.heartbeat_timeout_seconds / 10)
        return max(1, int(seconds / interval))

    async def _sweep_loop(self) -> None:
        interval = self._sweep_interval()
        full_every = self._full_sweep_every(interval)
        rounds = 0
        while True:
            await asyncio.sleep(interval)
            rounds += 1
            full = rounds % full_every == 0 or now_ms(self.clock) >= self._next_token_expiry_ms
            try:
                await self.ping_idle(self.sweep(full=full, margin=2 * interval))
                await self.verifier.refresh_if_stale()
            except Exception:
                log.exception("sweep_failed")

    def sweep(self, full: bool = True, margin: float = 0.0) -> list[Session]:
        """Close sessions that sent no Hello in time, went silent, or whose token expired;
        the signed-in sessions heard from no more recently than a heartbeat interval ago,
        which the caller pings (`ping_idle`).

        `full`: every session is looked at (one cheap pass picks those that may be due:
        silent too long, or a token expired; a session waiting for its Hello has none yet,
        so it is always picked). Otherwise only the connections opened within the Hello
        timeout (and `margin`) are: the newest, at the end of `sessions`, which keeps its
        connections in the order they opened. Idle sessions then cost nothing per round but
        their Ping, once a heartbeat interval, all of a round's in one go.
        """
        s = self.settings
        mono, wall_ms = self.clock.monotonic(), now_ms(self.clock)
        hello_timeout, heartbeat_timeout = s.hello_timeout_seconds, s.heartbeat_timeout_seconds
        silent_since = mono - heartbeat_timeout
        idle_since = mono - s.heartbeat_interval_ms / 1000
        idle: list[Session] = []
        if full:
            sessions = self.sessions.values()
            due = []
            for session in sessions:
                if session.last_heard <= silent_since or session.token_expires_at_ms <= wall_ms:
                    due.append(session)
                elif session.last_heard <= idle_since and session.state == ACTIVE:
                    idle.append(session)
            self._next_token_expiry_ms = min(
                (x.token_expires_at_ms for x in sessions if x.token_expires_at_ms > wall_ms),
                default=NO_EXPIRY,
            )
        else:
            opened_since = mono - hello_timeout - margin
            newest = itertools.takewhile(
                lambda session: session.opened_at >= opened_since,
                reversed(self.sessions.values()),
            )
            due = [session for session in newest if session.state == AWAITING_HELLO]
        for session in due:
            if session.state == AWAITING_HELLO:
                # A Hello that came (its seq taken) and waits for its turn to sign in
                # (sign_ins) is not missing: its client's own Welcome timeout bounds that
                # wait.
                if not session.in_seq and mono - session.opened_at >= hello_timeout:
                    err = ParleyError(
                        ErrorCode.ERROR_CODE_HEARTBEAT_TIMEOUT,
                        f"no Hello within {hello_timeout:g} s of connecting",
                    )
                    self.close_soon(session, err, framing.CLOSE_TIMEOUT)
            elif session.state == ACTIVE:
                if session.last_heard <= silent_since:
                    err = ParleyError(
                        ErrorCode.ERROR_CODE_HEARTBEAT_TIMEOUT,
                        f"nothing heard for {s.heartbeat_timeout_seconds:g} s; ping every "
                        f"{s.heartbeat_interval_ms} ms",
                    )
                    self.close_soon(session, err, framing.CLOSE_TIMEOUT)
                elif session.token_expires_at_ms <= wall_ms:
                    err = ParleyError(
                        ErrorCode.ERROR_CODE_TOKEN_EXPIRED,
                        "the session's access token expired; send RefreshToken before it does",
                        "access_token",
                    )
                    self.close_soon(session, err, framing.CLOSE_UNAUTHENTICATED)
        return idle

    async def ping_idle(self, sessions: list[Session]) -> None:
        """Ping each of `sessions` (a write each, none waits): the Pongs come back
        together, so one wakeup of the loop reads many, where a Ping from each client
        would wake it once per Ping and cost a reply."""
        sent = frames("out", "websocket_ping")
        for done, session in enumerate(sessions, 1):
            if await session.ping():
                sent.inc()
            if done % PING_BATCH == 0:
                await asyncio.sleep(0)  # let the rest of the loop's work in between

    async def _rewrite_presence(self) -> None:
        """The bucket was made again (NATS restarted): every session here is in it at once."""
        sessions = list(self.sessions.values())
        await self.refresh_presence(sessions)
        log.info("presence_rewritten", sessions=len(sessions))

    async def _presence_loop(self) -> None:
        interval = self.presence.refresh_interval
        while True:
            await asyncio.sleep(interval)
            try:
                await self.refresh_presence(list(self.sessions.values()))
            except Exception:
                log.exception("presence_refresh_failed")

    async def refresh_presence(self, sessions: list[Session]) -> None:
        """Rewrite the presence entries of `sessions` that are still signed in when written
        (one that closed meanwhile has deleted its entry: it must not come back)."""
        failed = await self.presence.refresh(sessions, _is_device)
        if failed:
            log.warning("presence_refresh_failed", failed=failed, total=len(sessions))

    # Drain and stop ---------------------------------------------------------------------

    async def drain(self) -> None:
        """Refuse new sessions, close live ones with 1012 so clients go to another replica.

        Takes at most drain_timeout_seconds: connections not closed by then are dropped.
        """
        self.draining = True
        count = len(self.sessions)
        timeout = self.settings.drain_timeout_seconds
        deadline = asyncio.get_running_loop().time() + timeout
        # Replies still on their way from services reach their clients before the closes.
        if not await self.forwarder.wait_idle(timeout * DRAIN_REPLIES_SHARE):
            log.warning("drain_replies_left", requests=self.forwarder.in_flight)
        left = deadline - asyncio.get_running_loop().time()
        await self._close_all(
            "gateway is restarting; reconnect", left - timeout * DRAIN_CLEANUP_SHARE
        )
        if not await self._wait_empty(deadline - asyncio.get_running_loop().time()):
            log.warning("drain_sessions_left", sessions=len(self.sessions))
        log.info("gateway_drained", sessions_closed=count)

    async def stop(self) -> None:
        self.draining = True
        if self.sessions:
            await self._close_all("gateway is stopping; reconnect", WS_CLOSE_TIMEOUT_SECONDS)
            await self._wait_empty(1.0)
        await tasks.stop(*self._loops, *self._closing)
        self._loops.clear()
        await self.forwarder.cancel()
        if self._takeovers is not None:
            with contextlib.suppress(Exception):
                await self._takeovers.unsubscribe()
            self._takeovers = None
        await self.window.close()
        await self.peers.stop()
        await self.router.stop()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
        log.info("gateway_stopped", gateway_id=self.gateway_id)

    async def _close_all(self, reason: str, timeout: float) -> None:
        """Close every session with 1012, waiting at most `timeout`; then drop the rest."""
        live = [s for s in self.sessions.values() if s.state != CLOSING]
        closes = [asyncio.create_task(s.close(framing.CLOSE_SERVICE_RESTART, reason)) for s in live]
        if not closes:
            return
        _, pending = await asyncio.wait(closes, timeout=max(0.0, timeout))
        if pending:
            # Out of time (clients that do not answer the close): drop every connection
            # left, so the handlers end and clean up.
            for session in list(self.sessions.values()):
                session.abort("drain_deadline", log_it=False)
            for task in pending:
                task.cancel()
            await asyncio.gather(*pending, return_exceptions=True)
            log.warning("closes_timed_out", dropped=len(pending), timeout_seconds=timeout)

    async def _wait_empty(self, timeout: float) -> bool:
        try:
            await asyncio.wait_for(self._empty.wait(), timeout)
            return True
        except TimeoutError:
            return False


def _is_device(session: Session) -> bool:
    return session.signed_in and session.active
