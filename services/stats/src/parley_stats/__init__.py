"""Parley stats: call reports uploaded by devices, kept through the stream STATS in the
`stats` schema, and their aggregates per application and window of time."""
