"""A local FCM: Google's OAuth token endpoint for service accounts (the JWT bearer grant)
and the FCM HTTP v1 messages:send API, each checking what the real one checks.

    async with FakeFcm(tls) as fcm:
        account_json = fcm.service_account()          # a fresh key the fake trusts
        credentials = FcmCredentials.from_service_account(account_json, endpoint=fcm.url)
"""

from __future__ import annotations

import json
import re
import secrets
import time
from typing import Any
from urllib.parse import parse_qs

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from tests.support.providers.server import FakeProvider, PushRecord, Request, Response
from tests.support.providers.tls import LocalTls

SCOPE = "https://www.googleapis.com/auth/firebase.messaging"
JWT_BEARER_GRANT = "urn:ietf:params:oauth:grant-type:jwt-bearer"
_SEND_PATH = re.compile(r"/v1/projects/([^/]+)/messages:send")
_TOKEN = re.compile(r"[A-Za-z0-9_:\-]{20,}")
_TTL = re.compile(r"\d+(\.\d{1,9})?s")
_MESSAGE_FIELDS = {"name", "data", "notification", "android", "webpush", "apns", "fcm_options"}
_TARGETS = {"token", "topic", "condition"}
_ANDROID_FIELDS = {
    "collapse_key",
    "priority",
    "ttl",
    "restricted_package_name",
    "data",
    "notification",
    "fcm_options",
    "direct_boot_ok",
}


def _rsa_pem(key: rsa.RSAPrivateKey) -> str:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode("ascii")


def with_other_key(service_account_json: str) -> str:
    """The same service account (email, key ID) with another private key: what a key the
    project does not know looks like."""
    account = json.loads(service_account_json)
    account["private_key"] = _rsa_pem(
        rsa.generate_private_key(public_exponent=65537, key_size=2048)
    )
    return json.dumps(account)


def google_error(
    code: int, status: str, message: str, details: list[Any] | None = None
) -> Response:
    error: dict[str, Any] = {"code": code, "message": message, "status": status}
    if details:
        error["details"] = details
    return Response.of_json(code, {"error": error})


def fcm_error(code: int, status: str, message: str, error_code: str) -> Response:
    detail = {
        "@type": "type.googleapis.com/google.firebase.fcm.v1.FcmError",
        "errorCode": error_code,
    }
    return google_error(code, status, message, [detail])


def _oauth_error(error: str, description: str) -> Response:
    return Response.of_json(400, {"error": error, "error_description": description})


class FakeFcm(FakeProvider):
    """`token_lifetime`: the expires_in of the access tokens it issues (seconds)."""

    def __init__(
        self,
        tls: LocalTls,
        *,
        project_id: str = "parley-test",
        token_lifetime: int = 3600,
        requests_per_connection: int = 1_000_000,
    ) -> None:
        super().__init__(tls, requests_per_connection=requests_per_connection)
        self.project_id = project_id
        self.token_lifetime = token_lifetime
        self.accounts: dict[str, tuple[str, rsa.RSAPublicKey]] = {}  # key ID: (email, key)
        self.access_tokens: dict[str, float] = {}  # issued token: expiry (time.time())
        self.token_requests = 0  # token exchanges asked for, granted or not

    @property
    def token_uri(self) -> str:
        return f"{self.url}/token"

    def service_account(self) -> str:
        """A service account key file (JSON) of a fresh RSA key this project trusts."""
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        key_id = secrets.token_hex(20)
        email = f"push-{secrets.token_hex(3)}@{self.project_id}.iam.gserviceaccount.com"
        self.accounts[key_id] = (email, key.public_key())
        return json.dumps(
            {
                "type": "service_account",
                "project_id": self.project_id,
                "private_key_id": key_id,
                "private_key": _rsa_pem(key),
                "client_email": email,
                "client_id": str(secrets.randbelow(10**20)),
                "auth_uri": "https://accounts.google.com/o/oauth2/auth",
                "token_uri": self.token_uri,
            }
        )

    def expire_access_tokens(self) -> None:
        """Every access token issued so far is refused from now on (401)."""
        for token in self.access_tokens:
            self.access_tokens[token] = 0.0

    async def handle(self, request: Request) -> Response:
        if request.method != "POST":
            return google_error(405, "METHOD_NOT_ALLOWED", "Only POST is served here.")
        if request.path == "/token":
            return self._token(request)
        match = _SEND_PATH.fullmatch(request.path)
        if match is None:
            return google_error(404, "NOT_FOUND", f"No such resource: {request.path}")
        return self._send(request, match.group(1))

    def _token(self, request: Request) -> Response:
        self.token_requests += 1
        if not request.headers.get("content-type", "").startswith(
            "application/x-www-form-urlencoded"
        ):
            return _oauth_error("invalid_request", "Form-encoded body expected.")
        form = parse_qs(request.body.decode(), strict_parsing=False)
        if form.get("grant_type") != [JWT_BEARER_GRANT]:
            return _oauth_error("unsupported_grant_type", "Invalid grant_type.")
        assertion = (form.get("assertion") or [""])[0]
        try:
            header = jwt.get_unverified_header(assertion)
        except jwt.PyJWTError:
            self.auth_failures += 1
            return _oauth_error("invalid_grant", "Invalid JWT: not a JWT.")
        account = self.accounts.get(str(header.get("kid", "")))
        if header.get("alg") != "RS256" or account is None:
            self.auth_failures += 1
            return _oauth_error("invalid_grant", "Invalid JWT Signature.")
        email, public_key = account
        try:
            claims = jwt.decode(
                assertion,
                public_key,
                algorithms=["RS256"],
                audience=self.token_uri,
                issuer=email,
                options={"require": ["iss", "aud", "iat", "exp", "scope"]},
            )
        except jwt.InvalidSignatureError:
            self.auth_failures += 1
            return _oauth_error("invalid_grant", "Invalid JWT Signature.")
        except jwt.PyJWTError as exc:
            self.auth_failures += 1
            return _oauth_error("invalid_grant", f"Invalid JWT: {exc}")
        if claims["exp"] - claims["iat"] > 3600 or claims["iat"] > time.time() + 300:
            self.auth_failures += 1
            return _oauth_error(
                "invalid_grant",
                "Invalid JWT: Token must be a short-lived token (60 minutes) and in a "
                "reasonable timeframe.",
            )
        if SCOPE not in str(claims["scope"]).split():
            self.auth_failures += 1
            return _oauth_error("invalid_scope", "The firebase.messaging scope is missing.")
        token = "ya29." + secrets.token_urlsafe(32)
        self.access_tokens[token] = time.time() + self.token_lifetime
        return Response.of_json(
            200, {"access_token": token, "expires_in": self.token_lifetime, "token_type": "Bearer"}
        )

    def _send(self, request: Request, project_id: str) -> Response:
        outage = self.outage_answer()
        if outage is not None:
            status, headers = outage
            answer = google_error(status, "UNAVAILABLE", "The service is currently unavailable.")
            return Response(answer.status, answer.body, {**answer.headers, **headers})
        scheme, _, bearer = request.headers.get("authorization", "").partition(" ")
        expiry = self.access_tokens.get(bearer) if scheme.lower() == "bearer" else None
        if expiry is None or expiry <= time.time():
            self.auth_failures += 1
            return google_error(
                401,
                "UNAUTHENTICATED",
                "Request had invalid authentication credentials. Expected OAuth 2 access "
                "token, login cookie or other valid authentication credential.",
            )
        if project_id != self.project_id:
            return google_error(
                403, "PERMISSION_DENIED", f"Permission denied on resource project {project_id}."
            )
        try:
            body = request.json()
        except ValueError:
            return google_error(400, "INVALID_ARGUMENT", "Invalid JSON payload received.")
        problem = self._check_message(body)
        if problem:
            return google_error(400, "INVALID_ARGUMENT", problem)
        message = body["message"]
        token = message["token"]
        if not _TOKEN.fullmatch(token):
            return google_error(
                400,
                "INVALID_ARGUMENT",
                "The registration token is not a valid FCM registration token",
                [
                    {
                        "@type": "type.googleapis.com/google.firebase.fcm.v1.FcmError",
                        "errorCode": "INVALID_ARGUMENT",
                    },
                    {
                        "@type": "type.googleapis.com/google.rpc.BadRequest",
                        "fieldViolations": [
                            {
                                "field": "message.token",
                                "description": "Invalid registration token",
                            }
                        ],
                    },
                ],
            )
        if token in self.dead_tokens:
            return fcm_error(404, "NOT_FOUND", "Requested entity was not found.", "UNREGISTERED")
        data = message.get("data", {})
        self.record(
            PushRecord(
                token=token,
                kind=data.get("kind", ""),
                payload=data.get("parley", ""),
                headers=dict(request.headers),
                body=body,
                arrived=time.time(),
                http_version=request.http_version,
            )
        )
        return Response.of_json(
            200, {"name": f"projects/{self.project_id}/messages/0:{secrets.token_hex(8)}"}
        )

    @staticmethod
    def _check_message(body: Any) -> str:
        """What is wrong with a messages:send body, in FCM's words; "" when nothing is."""
        if not isinstance(body, dict) or set(body) - {"message", "validate_only"}:
            return "Invalid JSON payload received. Unknown name at the top level."
        message = body.get("message")
        if not isinstance(message, dict):
            return "Request contains an invalid argument: message is required."
        unknown = set(message) - _MESSAGE_FIELDS - _TARGETS
        if unknown:
            return f"Invalid JSON payload received. Unknown name \"{sorted(unknown)[0]}\" at 'message'."
        if [target for target in _TARGETS if target in message] != ["token"]:
            return "Exactly one of token, topic or condition is required (this fake: token)."
        if not isinstance(message["token"], str):
            return "Invalid value at 'message.token' (TYPE_STRING)."
        data = message.get("data", {})
        if not isinstance(data, dict) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in data.items()
        ):
            return "Invalid value at 'message.data': values must be strings."
        android = message.get("android", {})
        if not isinstance(android, dict) or set(android) - _ANDROID_FIELDS:
            return "Invalid JSON payload received. Unknown name at 'message.android'."
        if "priority" in android and android["priority"] not in ("normal", "high"):
            return "Invalid value at 'message.android.priority'."
        if "ttl" in android and not (
            isinstance(android["ttl"], str) and _TTL.fullmatch(android["ttl"])
        ):
            return "Invalid value at 'message.android.ttl' (type.googleapis.com/google.protobuf.Duration)."
        if "collapse_key" in android and not isinstance(android["collapse_key"], str):
            return "Invalid value at 'message.android.collapse_key' (TYPE_STRING)."
        return ""
