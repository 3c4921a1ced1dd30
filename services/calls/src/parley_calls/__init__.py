"""Parley calls: the server side of app-to-app calls (set-up, the first answer wins, hang-up,
in-call signals relayed between the two parties, ICE servers), its state in the KV bucket
`calls`."""
