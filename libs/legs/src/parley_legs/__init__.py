"""Remote call legs: the far side of a call that a service holds instead of a user's
devices (the sip service's phone and SIP calls, the conference service's participants).

- `leg.Leg`: one leg's life: hears the call's events, reports ringing, answering and
  hanging up to the calls service, ends once.
- `reports.LegReporter`: those reports (LegReport on parley.calls.leg), retried.
- `webrtc`: the client's WebRTC leg (aiortc), audio as 20 ms frames of 48 kHz PCM.
"""
