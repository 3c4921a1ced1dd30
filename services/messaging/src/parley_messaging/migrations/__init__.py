"""Numbered SQL migrations of the `messaging` schema (applied at start by the runtime)."""
