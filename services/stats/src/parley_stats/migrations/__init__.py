"""Numbered SQL migrations of the `stats` schema (applied at start by the runtime)."""
