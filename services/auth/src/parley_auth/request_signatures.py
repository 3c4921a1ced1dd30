"""`parley.auth.verify_request`: whether an app backend's REST request is signed with its
application's secret.

The gateway builds the string to sign from the request it got (and checks the body's hash
and the timestamp itself); only auth holds the secrets, so it computes the signature here.
The application, with its opened secret, comes from the `AppDirectory` cache, which a
secret rotation evicts on every replica: the old secret stops working within moments.

An unknown application and a wrong signature get the same INVALID_SIGNATURE reason, so the
answer does not tell which application keys exist. Only a request signed with the right
secret learns more (WRONG_ENVIRONMENT for an application of the other environment).
"""

from __future__ import annotations

import base64
import binascii
import hmac

from parley.v1 import auth_pb2
from parley_auth.apps import AppDirectory
from parley_auth.metrics import REQUEST_SIGNATURES
from parley_protocol import signatures, subjects
from parley_protocol.errors import ErrorCode, ParleyError
from parley_protocol.validation import validate_application_key
from parley_service.bus import Bus
from parley_service.logs import get_logger

log = get_logger("parley.auth.request_signatures")

# The gateway's request line is at most 8 KiB; the rest of the string to sign is short.
MAX_STRING_TO_SIGN = 16 * 1024
SIGNATURE_BYTES = 32  # HMAC-SHA256

NOT_SIGNED = (
    "the request's signature does not verify: check the application key and secret, and "
    "that the string to sign is built from this request"
)


def declare_request_signature_endpoint(bus: Bus, verifier: RequestSignatureVerifier) -> None:
    bus.endpoint(
        subjects.AUTH_VERIFY_REQUEST,
        auth_pb2.VerifyRequestSignature,
        verifier.verify,
        subjects.AUTH_QUEUE,
    )


def _invalid(reason: str, field: str) -> ParleyError:
    return ParleyError(ErrorCode.ERROR_CODE_INVALID_ARGUMENT, reason, field)


def _signature_bytes(signature: str) -> bytes:
    try:
        raw = base64.b64decode(signature, validate=True)
    except (binascii.Error, ValueError):
        raw = b""
    if len(raw) != SIGNATURE_BYTES:
        raise _invalid("signature is not Base64 of an HMAC-SHA256 digest (32 bytes)", "signature")
    return raw


class RequestSignatureVerifier:
    def __init__(self, apps: AppDirectory, environment: str) -> None:
        self._apps = apps
        self._environment = environment

    async def verify(
        self, req: auth_pb2.VerifyRequestSignature
    ) -> auth_pb2.RequestSignatureVerified:
        try:
            verified = await self._verify(req)
        except ParleyError as err:
            REQUEST_SIGNATURES.labels(err.code_name).inc()
            log.info(
                "request_signature_refused",
                app=req.application_key[:64],
                code=err.code_name,
            )
            raise
        REQUEST_SIGNATURES.labels("ok").inc()
        return verified

    async def _verify(
        self, req: auth_pb2.VerifyRequestSignature
    ) -> auth_pb2.RequestSignatureVerified:
        try:
            key = validate_application_key(req.application_key)
        except ParleyError as err:
            raise _invalid(err.reason, "application_key") from err
        if not req.string_to_sign:
            raise _invalid("string_to_sign is empty", "string_to_sign")
        if len(req.string_to_sign) > MAX_STRING_TO_SIGN:
            raise _invalid(
                f"string_to_sign is over {MAX_STRING_TO_SIGN} characters", "string_to_sign"
            )
        presented = _signature_bytes(req.signature)
        app = await self._apps.find(key)
        if app is None:
            raise ParleyError(ErrorCode.ERROR_CODE_INVALID_SIGNATURE, NOT_SIGNED, "signature")
        expected = base64.b64decode(signatures.rest_signature(app.secret, req.string_to_sign))
        if not hmac.compare_digest(presented, expected):
            raise ParleyError(ErrorCode.ERROR_CODE_INVALID_SIGNATURE, NOT_SIGNED, "signature")
        if app.environment != self._environment:
            raise ParleyError(
                ErrorCode.ERROR_CODE_WRONG_ENVIRONMENT,
                f"application {key} belongs to the {app.environment} environment; this is "
                f"the {self._environment} environment",
                "application_key",
            )
        return auth_pb2.RequestSignatureVerified(
            application_key=app.key, environment=app.environment
        )
