"""A far phone for tests, as its own process (pjsua2 allows one Endpoint per process).

A plain pjsua2 user agent on 127.0.0.1, written apart from the engine so that the two
check each other: it answers one call (``--answer``) or dials one (``--dial URI``),
plays a sine tone into it (``pj.ToneGenerator``), records what it hears to a WAV file
for ``--listen`` seconds, sends and collects RFC 4733 digits, then prints one JSON line:
``{"freq": dominant Hz, "rms": ..., "digits": "...", "codec": ..., "end": code}``.
The first line it prints is ``{"ready": true, "port": SIP port}``.

    python -m tests.support.sip.phone --answer --tone 1000 --listen 1.5 --hangup
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
import wave
from pathlib import Path
from typing import Any

import numpy as np
import pjsua2 as pj

HOST = "127.0.0.1"


def analyse(pcm: np.ndarray[Any, Any], rate: int) -> tuple[float, float]:
    """Dominant frequency (Hz) and RMS of 16-bit samples."""
    if pcm.size == 0:
        return 0.0, 0.0
    samples = pcm.astype(np.float64)
    spectrum = np.abs(np.fft.rfft(samples * np.hanning(samples.size)))
    spectrum[0] = 0.0
    freq = float(np.argmax(spectrum)) * rate / samples.size
    return freq, float(np.sqrt(np.mean(samples**2)))


class Phone:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.call: _Call | None = None
        self.media: Any = None
        self.digits: list[str] = []
        self.disconnected = False
        self.end_code = 0
        self.codec = ""

    def run(self) -> dict[str, Any]:
        args = self.args
        ep = pj.Endpoint()
        ep.libCreate()
        cfg = pj.EpConfig()
        cfg.uaConfig.threadCnt = 0
        cfg.uaConfig.mainThreadOnly = True
        cfg.logConfig.level = 1
        cfg.logConfig.consoleLevel = 1
        cfg.medConfig.noVad = True
        cfg.medConfig.ecTailLen = 0
        ep.libInit(cfg)
        tcfg = pj.TransportConfig()
        tcfg.port = args.port
        tcfg.boundAddress = HOST
        tid = ep.transportCreate(pj.PJSIP_TRANSPORT_UDP, tcfg)
        port = int(str(ep.transportGetInfo(tid).localName).rsplit(":", 1)[1])
        ep.libStart()
        ep.audDevManager().setNullDev()
        for codec in ep.codecEnum2():
            name = str(codec.codecId).split("/", 1)[0]
            ep.codecSetPriority(codec.codecId, {"PCMU": 255, "PCMA": 254}.get(name, 0))
        acc_cfg = pj.AccountConfig()
        acc_cfg.idUri = f"sip:phone@{HOST}:{port}"
        acc_cfg.mediaConfig.transportConfig.boundAddress = HOST
        acc_cfg.mediaConfig.lockCodecEnabled = False
        acc = _Account(self)
        acc.create(acc_cfg)
        print(json.dumps({"ready": True, "port": port}), flush=True)

        tones = pj.ToneGenerator()
        tones.createToneGenerator(16000, 1)
        recorder: Any = None
        wav = Path(tempfile.mkdtemp(prefix="parley-phone-")) / "heard.wav"
        result: dict[str, Any] = {}
        try:
            if args.dial:
                self.call = _Call(self, acc)
                prm = pj.CallOpParam(True)
                prm.opt.audioCount = 1
                prm.opt.videoCount = 0
                self.call.makeCall(args.dial, prm)
            deadline = time.monotonic() + args.timeout
            pump = lambda: ep.libHandleEvents(10)  # noqa: E731
            while self.media is None and not self.disconnected:
                if time.monotonic() > deadline:
                    raise TimeoutError("no call")
                pump()
            if self.media is not None:
                desc = pj.ToneDesc()
                desc.freq1 = desc.freq2 = int(args.tone)
                desc.on_msec = 10_000
                desc.off_msec = 0
                desc.volume = 0
                vec = pj.ToneDescVector()
                vec.append(desc)
                tones.play(vec, True)
                tones.startTransmit(self.media)
                _run_for(pump, args.warmup, lambda: self.disconnected)
                if args.send_dtmf and not self.disconnected:
                    dtmf = pj.CallSendDtmfParam()
                    dtmf.digits = args.send_dtmf
                    dtmf.method = pj.PJSUA_DTMF_METHOD_RFC2833
                    assert self.call is not None
                    self.call.sendDtmf(dtmf)
                recorder = pj.AudioMediaRecorder()
                recorder.createRecorder(str(wav))
                self.media.startTransmit(recorder)
                _run_for(pump, args.listen, lambda: self.disconnected)
                if not self.disconnected:
                    self.media.stopTransmit(recorder)
                    tones.stopTransmit(self.media)
                recorder = None  # closes the WAV file once the bridge let go of it
                _run_for(pump, 0.2, lambda: False)
                while len(self.digits) < args.expect_dtmf and not self.disconnected:
                    if time.monotonic() > deadline:
                        break
                    pump()
            if args.hangup and self.call is not None and not self.disconnected:
                self.call.hangup(pj.CallOpParam())
            while not self.disconnected and time.monotonic() < deadline:
                pump()
            freq, rms = 0.0, 0.0
            if wav.exists():
                with wave.open(str(wav)) as w:
                    rate = w.getframerate()
                    pcm = np.frombuffer(w.readframes(w.getnframes()), dtype="<i2")
                freq, rms = analyse(pcm, rate)
            result = {
                "freq": round(freq, 1),
                "rms": round(rms, 1),
                "digits": "".join(self.digits),
                "codec": self.codec,
                "end": self.end_code,
            }
        finally:
            recorder = None
            self.media = None
            tones = None
            self.call = None
            acc.shutdown()
            ep.libDestroy()
        return result


def _run_for(pump: Any, seconds: float, stop: Any) -> None:
    until = time.monotonic() + seconds
    while time.monotonic() < until and not stop():
        pump()


class _Account(pj.Account):  # type: ignore[misc]
    def __init__(self, phone: Phone) -> None:
        super().__init__()
        self.phone = phone

    def onIncomingCall(self, prm: Any) -> None:
        if self.phone.call is not None:
            return
        call = _Call(self.phone, self, prm.callId)
        self.phone.call = call
        op = pj.CallOpParam()
        op.statusCode = 200
        call.answer(op)


class _Call(pj.Call):  # type: ignore[misc]
    def __init__(self, phone: Phone, acc: Any, call_id: int = -1) -> None:
        if call_id == -1:
            super().__init__(acc)
        else:
            super().__init__(acc, call_id)
        self.phone = phone

    def onCallState(self, prm: Any) -> None:
        ci = self.getInfo()
        if ci.state == pj.PJSIP_INV_STATE_DISCONNECTED:
            self.phone.disconnected = True
            self.phone.end_code = int(ci.lastStatusCode)

    def onCallMediaState(self, prm: Any) -> None:
        ci = self.getInfo()
        for i, media in enumerate(ci.media):
            if media.type == pj.PJMEDIA_TYPE_AUDIO and media.status == pj.PJSUA_CALL_MEDIA_ACTIVE:
                self.phone.media = self.getAudioMedia(i)
                si = self.getStreamInfo(i)
                self.phone.codec = f"{si.codecName}/{si.codecClockRate}"

    def onDtmfDigit(self, prm: Any) -> None:
        self.phone.digits.append(str(prm.digit))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    mode = parser.add_mutually_exclusive_group(required=True)
    mode.add_argument("--answer", action="store_true", help="answer one incoming call")
    mode.add_argument("--dial", help="call this SIP URI")
    parser.add_argument("--port", type=int, default=0, help="SIP port (0: a free one)")
    parser.add_argument("--tone", type=float, default=1000.0, help="Hz played into the call")
    parser.add_argument("--warmup", type=float, default=0.5, help="s before recording")
    parser.add_argument("--listen", type=float, default=1.5, help="s recorded")
    parser.add_argument("--send-dtmf", default="", help="digits sent after the warm-up")
    parser.add_argument("--expect-dtmf", type=int, default=0, help="digits to wait for")
    parser.add_argument("--hangup", action="store_true", help="hang up when done")
    parser.add_argument("--timeout", type=float, default=20.0, help="s for the whole call")
    args = parser.parse_args(argv)
    result = Phone(args).run()
    print(json.dumps(result), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
