"""Parley messaging: the server side of instant messages. Every message is committed to
PostgreSQL (the `messaging` schema, synchronous commit, concurrent sends grouped into one
commit) before it is acknowledged, then told to the recipients' and the sender's devices;
devices acknowledge what they have (delivered receipts), fetch what they missed, mark
messages read (read receipts) and say when their user is typing."""
