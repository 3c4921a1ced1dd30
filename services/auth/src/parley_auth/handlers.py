"""The auth service's bus endpoints, declared in one place (`declare_endpoints`).

register:   a device proves it may act for a user (self-signed or app-server signature)
            and receives a device credential plus a first access token.
token:      a device credential is traded for a fresh access token.
jwks:       the public keys that verify access tokens.
app_lookup: public facts about an application (never its secret).
user_lookup: whether a user of an application ever registered a device (a call to a user
            who never did ends at once).
number_lookup: whom a call from a phone to a number rings (numbers.py).
verify_request: whether an app backend's REST request is signed with its application's
            secret (request_signatures.py, declared beside these in app.py).
"""

from __future__ import annotations

import hashlib
import json
import uuid
from typing import Any

from parley.v1 import auth_pb2
from parley_auth import numbers, store
from parley_auth.apps import AppDirectory, AppInfo
from parley_auth.credentials import (
    hash_instance_secret,
    instance_secret_matches,
    new_instance_secret,
    parse_instance_id,
)
from parley_auth.keys import KeyRing, to_datetime
from parley_auth.metrics import REGISTRATIONS, TOKENS_ISSUED
from parley_auth.settings import AuthSettings
from parley_protocol import signatures, subjects
from parley_protocol.clock import Clock, now_ms
from parley_protocol.errors import ErrorCode, ParleyError
from parley_protocol.validation import (
    validate_application_key,
    validate_phone_number,
    validate_user_id,
)
from parley_service import access_tokens
from parley_service.bus import Bus
from parley_service.logs import get_logger

log = get_logger("parley.auth.handlers")

Scheme = auth_pb2.RegistrationScheme
SCHEME_NAMES = {
    Scheme.REGISTRATION_SCHEME_APPLICATION_SECRET: "application_secret",
    Scheme.REGISTRATION_SCHEME_APPLICATION_SERVER: "application_server",
}
MAX_SEQUENCE = 2**63 - 1  # stored as bigint
MAX_DEVICE_NAME_LENGTH = 200


def declare_endpoints(bus: Bus, handlers: AuthHandlers) -> None:
    queue = subjects.AUTH_QUEUE
    bus.endpoint(subjects.AUTH_REGISTER, auth_pb2.RegisterRequest, handlers.register, queue)
    bus.endpoint(subjects.AUTH_TOKEN, auth_pb2.TokenRequest, handlers.token, queue)
    bus.endpoint(subjects.AUTH_JWKS, auth_pb2.JwksRequest, handlers.jwks, queue)
    bus.endpoint(subjects.AUTH_APP_LOOKUP, auth_pb2.AppLookupRequest, handlers.app_lookup, queue)
    bus.endpoint(subjects.AUTH_USER_LOOKUP, auth_pb2.UserLookupRequest, handlers.user_lookup, queue)
    bus.endpoint(
        subjects.AUTH_NUMBER_LOOKUP, auth_pb2.NumberLookupRequest, handlers.number_lookup, queue
    )


def _invalid(reason: str, field: str) -> ParleyError:
    return ParleyError(ErrorCode.ERROR_CODE_INVALID_ARGUMENT, reason, field)


def _unauthenticated(reason: str) -> ParleyError:
    return ParleyError(ErrorCode.ERROR_CODE_UNAUTHENTICATED, reason, "credential")


class AuthHandlers:
    def __init__(
        self, settings: AuthSettings, db: Any, apps: AppDirectory, keys: KeyRing, clock: Clock
    ) -> None:
        self._settings = settings
        self._db = db
        self._apps = apps
        self._keys = keys
        self._clock = clock

    # register -----------------------------------------------------------------------

    async def register(self, req: auth_pb2.RegisterRequest) -> auth_pb2.RegisterResponse:
        scheme = SCHEME_NAMES.get(req.scheme, "unspecified")
        try:
            response = await self._register(req, scheme)
        except ParleyError as err:
            REGISTRATIONS.labels(scheme, err.code_name).inc()
            log.info(
                "registration_refused",
                app=req.application_key[:64],
                scheme=scheme,
                code=err.code_name,
                reason=err.reason,
            )
            raise
        except Exception:
            REGISTRATIONS.labels(scheme, "INTERNAL").inc()
            raise
        REGISTRATIONS.labels(scheme, "ok").inc()
        return response

    async def _register(
        self, req: auth_pb2.RegisterRequest, scheme: str
    ) -> auth_pb2.RegisterResponse:
        key = validate_application_key(req.application_key)
        user_id = validate_user_id(req.user_id)
        if req.scheme not in SCHEME_NAMES:
            raise _invalid(
                "scheme must be REGISTRATION_SCHEME_APPLICATION_SECRET or "
                "REGISTRATION_SCHEME_APPLICATION_SERVER",
                "scheme",
            )
        signature = req.signature.strip()
        if not signature:
            raise ParleyError(
                ErrorCode.ERROR_CODE_INVALID_SIGNATURE, "signature is missing", "signature"
            )
        if len(req.device_name) > MAX_DEVICE_NAME_LENGTH:
            raise _invalid(
                f"device_name is {len(req.device_name)} characters long; the limit is "
                f"{MAX_DEVICE_NAME_LENGTH}",
                "device_name",
            )
        if not req.device_name.isprintable():
            raise _invalid("device_name has a control character", "device_name")
        server_scheme = req.scheme == Scheme.REGISTRATION_SCHEME_APPLICATION_SERVER
        if server_scheme:
            if req.sequence < 1:
                raise _invalid(
                    "sequence is missing: the app server's sequences start at 1", "sequence"
                )
            if req.sequence > MAX_SEQUENCE:
                raise _invalid(f"sequence is larger than {MAX_SEQUENCE}", "sequence")
        elif req.timestamp_ms <= 0:
            raise _invalid(
                "timestamp_ms is missing: a self-signed registration carries the unix time "
                "in ms it was signed at",
                "timestamp_ms",
            )

        app = await self._apps.require(key, self._settings.environment)
        if server_scheme:
            expected = signatures.registration_signature(user_id, key, req.sequence, app.secret)
        else:
            self._check_fresh(req.timestamp_ms)
            expected = signatures.self_signed_registration(
                user_id, key, req.timestamp_ms, app.secret
            )
        if not signatures.signatures_equal(signature, expected):
            raise ParleyError(
                ErrorCode.ERROR_CODE_INVALID_SIGNATURE,
                "signature does not match this application key, user ID and "
                + ("sequence" if server_scheme else "timestamp")
                + " under the application's current secret",
                "signature",
            )

        instance_id = uuid.uuid4()
        instance_secret = new_instance_secret()
        now = to_datetime(self._clock.time())
        secret_hash = hash_instance_secret(instance_secret)
        if not server_scheme:
            # Valid once: remembered until its timestamp leaves the window.
            window = self._settings.auth_self_signed_window_seconds
            expires = to_datetime(req.timestamp_ms / 1000 + window)
            if not await store.insert_device_instance_once(
                self._db,
                instance_id,
                app.id,
                user_id,
                secret_hash,
                req.device_name,
                now,
                hashlib.sha256(signature.encode()).digest(),
                expires,
            ):
                raise ParleyError(
                    ErrorCode.ERROR_CODE_INVALID_SIGNATURE,
                    "this signed registration was used already; sign a new one",
                    "signature",
                )
        elif not await store.insert_device_instance_at_sequence(
            self._db, instance_id, app.id, user_id, secret_hash, req.device_name, now, req.sequence
        ):
            last = await store.get_user_sequence(self._db, app.id, user_id)
            raise ParleyError(
                ErrorCode.ERROR_CODE_SEQUENCE_REUSED,
                f"sequence {req.sequence} is not greater than the last one accepted for "
                f"this user ({last})",
                "sequence",
            )
        token = self._issue(app, user_id, str(instance_id))
        log.info("device_registered", app=key, user=user_id, instance=str(instance_id))
        return auth_pb2.RegisterResponse(
            credential=auth_pb2.DeviceCredential(
                instance_id=str(instance_id), instance_secret=instance_secret
            ),
            token=token,
        )

    def _check_fresh(self, timestamp_ms: int) -> None:
        skew_ms = now_ms(self._clock) - timestamp_ms
        window_ms = self._settings.auth_self_signed_window_seconds * 1000
        if abs(skew_ms) > window_ms:
            direction = "behind" if skew_ms > 0 else "ahead of"
            raise ParleyError(
                ErrorCode.ERROR_CODE_STALE_TIMESTAMP,
                f"timestamp_ms is {abs(skew_ms) / 1000:.0f} s {direction} server time; "
                f"it must be within {self._settings.auth_self_signed_window_seconds} s",
                "timestamp_ms",
            )

    # token --------------------------------------------------------------------------

    async def token(self, req: auth_pb2.TokenRequest) -> auth_pb2.TokenResponse:
        key = validate_application_key(req.application_key)
        user_id = validate_user_id(req.user_id)
        credential = req.credential
        if not credential.instance_id or not credential.instance_secret:
            raise _unauthenticated(
                "credential is missing: give the instance_id and instance_secret "
                "received at registration"
            )
        instance_id = parse_instance_id(credential.instance_id)
        if instance_id is None:
            raise _unauthenticated(
                f"credential.instance_id {credential.instance_id[:64]!r} is not an instance id"
            )
        app = await self._apps.require(key, self._settings.environment)
        instance = await store.get_device_instance(self._db, instance_id)
        if instance is None:
            raise _unauthenticated(f"no device instance {instance_id}; register again")
        if not instance_secret_matches(credential.instance_secret, instance.secret_hash):
            raise _unauthenticated("credential.instance_secret does not match this instance")
        if instance.application_key != key or instance.user_id != user_id:
            raise _unauthenticated(
                "this device credential was issued to another user or application"
            )
        if instance.revoked_at is not None:
            raise _unauthenticated("this device credential was revoked; register again")
        await store.touch_device_instance(self._db, instance_id, to_datetime(self._clock.time()))
        return auth_pb2.TokenResponse(token=self._issue(app, user_id, str(instance_id)))

    def _issue(self, app: AppInfo, user_id: str, instance_id: str) -> auth_pb2.AccessToken:
        issued_at = int(self._clock.time())
        claims = access_tokens.Claims(
            application_key=app.key,
            user_id=user_id,
            instance_id=instance_id,
            environment=app.environment,
            issued_at=issued_at,
            expires_at=issued_at + self._settings.auth_token_ttl_seconds,
        )
        token, _ = self._keys.sign(claims)
        TOKENS_ISSUED.inc()
        return auth_pb2.AccessToken(token=token, expires_at_ms=claims.expires_at_ms)

    # jwks, app_lookup, user_lookup --------------------------------------------------

    async def jwks(self, req: auth_pb2.JwksRequest) -> auth_pb2.JwksResponse:
        return auth_pb2.JwksResponse(jwks_json=json.dumps(self._keys.jwks(), sort_keys=True))

    async def app_lookup(self, req: auth_pb2.AppLookupRequest) -> auth_pb2.AppLookupResponse:
        """Public facts of an application, whichever environment it belongs to."""
        key = validate_application_key(req.application_key)
        app = await self._apps.find(key)
        if app is None:
            raise ParleyError(
                ErrorCode.ERROR_CODE_UNKNOWN_APPLICATION,
                f"no application has the key {key}",
                "application_key",
            )
        return auth_pb2.AppLookupResponse(
            application_key=app.key,
            environment=app.environment,
            account_id=str(app.account_id),
            name=app.name,
        )

    async def number_lookup(
        self, req: auth_pb2.NumberLookupRequest
    ) -> auth_pb2.NumberLookupResponse:
        """Whom a call from a phone to the number rings (not found: nobody)."""
        number = validate_phone_number(req.number, "number")
        found = await numbers.lookup(self._db, number)
        if found is None:
            return auth_pb2.NumberLookupResponse(found=False)
        return auth_pb2.NumberLookupResponse(
            found=True, application_key=found.application_key, user_id=found.user_id
        )

    async def user_lookup(self, req: auth_pb2.UserLookupRequest) -> auth_pb2.UserLookupResponse:
        """Whether the user ever registered a device in the application (any environment)."""
        key = validate_application_key(req.application_key)
        user_id = validate_user_id(req.user_id)
        devices = await store.count_user_devices(self._db, key, user_id)
        return auth_pb2.UserLookupResponse(registered=devices > 0, devices=devices)
