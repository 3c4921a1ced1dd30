-- A self-signed registration is valid once: its signature is recorded until its timestamp
-- falls out of the accepted window, so a captured request cannot be replayed.
CREATE TABLE self_signed_uses (
    application_id uuid NOT NULL REFERENCES applications (id) ON DELETE CASCADE,
    signature_sha256 bytea NOT NULL,
    expires_at timestamptz NOT NULL,
    PRIMARY KEY (application_id, signature_sha256)
);

CREATE INDEX self_signed_uses_expires_at ON self_signed_uses (expires_at);
