"""Parley service runtime: settings, NATS, Postgres, health, metrics, tracing, shutdown,
and the access-token rules every service shares (`parley_service.access_tokens`).

Import the submodule you need (`parley_service.runtime`, `.bus`, `.settings`, `.db`, ...):
this package imports nothing itself, so a CLI that needs only settings starts fast.
"""
