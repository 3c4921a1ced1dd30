"""One sender per push provider: FCM HTTP v1, APNs (HTTP/2) and Web Push (VAPID, RFC 8291)."""
