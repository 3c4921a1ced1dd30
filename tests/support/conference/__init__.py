"""Conference load helpers shared by the bench and the tests: light clients whose
participants send pre-encoded Opus and do not decode (client.py), a stand-in replica that
mixes them (replica.py), and the JSON-lines pipes they are driven through (pipes.py)."""
