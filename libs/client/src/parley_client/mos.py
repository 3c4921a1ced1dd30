"""The mean opinion score of a call's audio, estimated with the E-model (ITU-T G.107) in the
simplified form VoIP monitoring uses (Cole and Rosenbluth, "Voice over IP performance
monitoring", ACM SIGCOMM CCR 31(2), 2001): every default of G.107 kept, so only delay and
loss lower the rating from its best value, 93.2.

- Effective latency: d = rtt / 2 + 2 * jitter + 10 ms (one-way network delay, the jitter
  buffer the jitter calls for, and the codec's own delay).
- Delay impairment: Id = 0.024 d + 0.11 (d - 177.3) H(d - 177.3), H the unit step.
- Loss impairment (G.107 7.6): Ie_eff = Ie + (95 - Ie) Ppl / (Ppl / BurstR + Bpl), with Ppl
  the packet loss in percent and BurstR = 1 (random loss).
- R = 93.2 - Id - Ie_eff; MOS = 1 + 0.035 R + 7e-6 R (R - 60) (100 - R) (G.107 Annex B),
  kept within 1.0 to 4.5.

Opus has no Ie or Bpl in ITU-T G.113 (Appendix I lists narrowband codecs only). On the
narrowband scale the E-model rates, Opus at the bitrates WebRTC uses codes speech without
audible loss, so Ie = 0, as G.113 gives G.711. Opus conceals lost frames; the Bpl G.113 gives
G.711 with packet loss concealment (G.711 Appendix I), 25.1, is used as the conservative
stand-in: Opus conceals at least as well (and better with in-band FEC, which this rating does
not assume).
"""

from __future__ import annotations

import math

R_MAX = 93.2  # R0 - Is with G.107's defaults
OPUS_IE = 0.0
OPUS_BPL = 25.1
CODEC_DELAY_MS = 10.0
MOS_MIN = 1.0
MOS_MAX = 4.5


def effective_latency_ms(rtt_ms: float, jitter_ms: float) -> float:
    """The one-way delay the E-model rates: half the round trip, twice the jitter, and the
    codec's delay."""
    return rtt_ms / 2 + 2 * jitter_ms + CODEC_DELAY_MS


def delay_impairment(latency_ms: float) -> float:
    """Id of the simplified E-model for a one-way delay."""
    excess = latency_ms - 177.3
    return 0.024 * latency_ms + (0.11 * excess if excess > 0 else 0.0)


def loss_impairment(loss_percent: float, ie: float = OPUS_IE, bpl: float = OPUS_BPL) -> float:
    """Ie_eff for random packet loss of `loss_percent` (0 to 100)."""
    return ie + (95 - ie) * loss_percent / (loss_percent + bpl)


def r_factor(rtt_ms: float, jitter_ms: float, loss_percent: float) -> float:
    """The transmission rating R (at most 93.2) of a path with this round-trip time, jitter
    (milliseconds) and packet loss (percent)."""
    latency = effective_latency_ms(rtt_ms, jitter_ms)
    return R_MAX - delay_impairment(latency) - loss_impairment(loss_percent)


def mos_from_r(r: float) -> float:
    """G.107's mapping of R to an estimated MOS, kept within 1.0 to 4.5."""
    if r <= 0:
        return MOS_MIN
    if r >= 100:
        return MOS_MAX
    score = 1 + 0.035 * r + 7e-6 * r * (r - 60) * (100 - r)
    return min(MOS_MAX, max(MOS_MIN, score))


def mos(rtt_ms: float, jitter_ms: float, loss_percent: float) -> float:
    """The estimated MOS (1.0 to 4.5) of Opus audio over a path with this round-trip time and
    jitter (milliseconds) and packet loss (percent). ValueError for a negative or non-finite
    input, or a loss above 100 %."""
    for name, value in (("rtt_ms", rtt_ms), ("jitter_ms", jitter_ms), ("loss", loss_percent)):
        if not math.isfinite(value) or value < 0:
            raise ValueError(f"{name} must be a finite number of at least 0, not {value!r}")
    if loss_percent > 100:
        raise ValueError(f"loss is a percentage (0 to 100), not {loss_percent!r}")
    return mos_from_r(r_factor(rtt_ms, jitter_ms, loss_percent))
