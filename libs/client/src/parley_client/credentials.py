"""The device credential store: one JSON file per (gateway hosts, application, user).

Registration happens once per user and device; the credential it yields is kept here
(mode 0600, written atomically) and traded for short-lived access tokens on every start.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import os
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from parley_client.logs import ClientLog

FILE_VERSION = 1


@dataclass(frozen=True)
class CredentialKey:
    """Which registration a credential belongs to."""

    hosts: tuple[str, ...]
    application_key: str
    user_id: str

    @classmethod
    def of(cls, hosts: Sequence[str], application_key: str, user_id: str) -> CredentialKey:
        return cls(tuple(sorted(set(hosts))), application_key, user_id)

    @property
    def file_name(self) -> str:
        identity = json.dumps([list(self.hosts), self.application_key, self.user_id])
        return hashlib.sha256(identity.encode("utf-8")).hexdigest()[:32] + ".json"


@dataclass(frozen=True)
class DeviceCredential:
    instance_id: str
    instance_secret: str

    def __repr__(self) -> str:  # never show the secret
        return f"DeviceCredential(instance_id={self.instance_id!r}, instance_secret=***)"


class CredentialStore:
    """Device credentials under `<directory>/credentials/`."""

    def __init__(self, directory: Path, log: ClientLog) -> None:
        self.directory = directory / "credentials"
        self._log = log

    def path(self, key: CredentialKey) -> Path:
        return self.directory / key.file_name

    async def load(self, key: CredentialKey) -> DeviceCredential | None:
        return await asyncio.to_thread(self._load, key)

    async def save(self, key: CredentialKey, credential: DeviceCredential, now_ms: int) -> None:
        await asyncio.to_thread(self._save, key, credential, now_ms)

    async def delete(self, key: CredentialKey) -> None:
        await asyncio.to_thread(self._delete, key)

    def _load(self, key: CredentialKey) -> DeviceCredential | None:
        path = self.path(key)
        try:
            raw = path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return None
        except OSError as exc:
            self._log.warning("credentials", f"cannot read {path}: {exc}; registering again")
            return None
        try:
            data: Any = json.loads(raw)
            stored_key = CredentialKey.of(data["hosts"], data["application_key"], data["user_id"])
            credential = DeviceCredential(str(data["instance_id"]), str(data["instance_secret"]))
        except (ValueError, KeyError, TypeError) as exc:
            self._log.warning(
                "credentials", f"{path} is not a valid credential file ({exc!r}); registering again"
            )
            return None
        if stored_key != key or not credential.instance_id or not credential.instance_secret:
            self._log.warning(
                "credentials", f"{path} holds another registration's credential; ignoring it"
            )
            return None
        return credential

    def _save(self, key: CredentialKey, credential: DeviceCredential, now_ms: int) -> None:
        self.directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        body = json.dumps(
            {
                "version": FILE_VERSION,
                "hosts": list(key.hosts),
                "application_key": key.application_key,
                "user_id": key.user_id,
                "instance_id": credential.instance_id,
                "instance_secret": credential.instance_secret,
                "created_at_ms": now_ms,
            },
            indent=2,
        )
        fd, tmp = tempfile.mkstemp(dir=self.directory, prefix=".credential-", suffix=".tmp")
        try:
            os.fchmod(fd, 0o600)
            with os.fdopen(fd, "w", encoding="utf-8") as handle:
                handle.write(body)
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(tmp, self.path(key))
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise
        _fsync_directory(self.directory)

    def _delete(self, key: CredentialKey) -> None:
        path = self.path(key)
        try:
            path.unlink()
        except FileNotFoundError:
            pass
        except OSError as exc:
            self._log.error("credentials", f"cannot delete the refused credential {path}: {exc}")


def _fsync_directory(directory: Path) -> None:
    """Make the rename durable (POSIX); a no-op where directories cannot be opened."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
