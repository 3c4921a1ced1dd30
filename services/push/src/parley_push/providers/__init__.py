"""One sender per push provider: FCM HTTP v1, APNs (HTTP/2) and Web Push (VAPID, RFC 8291).

- `base`: the `Notification` to deliver, the `Outcome` of one send (sent, dead token,
  retry, failed) and the `ProviderSender` protocol the job worker calls.
- `fcm`, `apns`, `web_push`: each provider's credentials (parsed with a reason on bad
  input), its authentication tokens (cached and renewed), requests and answer reading.
- `http`: the one HTTP client each sender keeps (HTTP/2, timeouts, pool, CA file).
"""
