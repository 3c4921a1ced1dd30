"""Parley service runtime: settings, NATS, Postgres, health, metrics, tracing, shutdown.

Import the submodule you need (`parley_service.runtime`, `.bus`, `.settings`, `.db`, ...):
this package imports nothing itself, so a CLI that needs only settings starts fast.
"""
