"""Each service process is given only what it needs: the public gateway holds neither the
database URL nor the master key that decrypts application secrets."""

from __future__ import annotations

from pathlib import Path

from .stack import E2EStack


def environ(pid: int) -> dict[str, str]:
    raw = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
    return dict(item.decode().split("=", 1) for item in raw if b"=" in item)


def test_gateway_gets_no_database_url_and_no_master_key(stack: E2EStack) -> None:
    gateway = environ(stack.devstack.supervisor.status("gateway-a").pid or 0)
    assert gateway.get("PARLEY_DATABASE_URL", "") == ""
    assert gateway.get("PARLEY_AUTH_MASTER_KEY", "") == ""
    auth = environ(stack.devstack.supervisor.status("auth").pid or 0)
    assert auth["PARLEY_DATABASE_URL"].startswith("postgresql://")
    assert auth["PARLEY_AUTH_MASTER_KEY"]
