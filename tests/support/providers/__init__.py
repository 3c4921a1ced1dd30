"""Local push provider servers for tests: FCM (OAuth token endpoint and HTTP v1 API),
APNs (HTTP/2 provider API) and a Web Push service, each over HTTPS with a test CA, checking
authentication and payloads as the real provider does; and the credentials to use them.

    tls = LocalTls.create(tmp_path)        # senders get ca_file=tls.ca_file
    async with FakeFcm(tls) as fcm: ...    # or FakeApns(tls), FakeWebPush(tls)
"""

from tests.support.providers.apns import ApnsKey, FakeApns, device_token, p8_key
from tests.support.providers.fcm import FakeFcm, with_other_key
from tests.support.providers.server import FakeProvider, PushRecord
from tests.support.providers.tls import LocalTls
from tests.support.providers.web_push import FakeWebPush, VapidKeyPair, vapid_key_pair

__all__ = [
    "ApnsKey",
    "FakeApns",
    "FakeFcm",
    "FakeProvider",
    "FakeWebPush",
    "LocalTls",
    "PushRecord",
    "VapidKeyPair",
    "device_token",
    "p8_key",
    "vapid_key_pair",
    "with_other_key",
]
