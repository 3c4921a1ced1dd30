-- Auth schema: accounts own applications; users register devices; tokens are signed with
-- rotatable Ed25519 keys. Secrets are stored sealed (AES-256-GCM under the master key).

CREATE TABLE accounts (
    id          uuid PRIMARY KEY,
    name        text NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
    created_at  timestamptz NOT NULL
);

CREATE TABLE applications (
    id                 uuid PRIMARY KEY,
    account_id         uuid NOT NULL REFERENCES accounts (id),
    key                text NOT NULL UNIQUE
                       CHECK (key ~ '^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$'),
    name               text NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
    environment        text NOT NULL CHECK (environment IN ('sandbox', 'production')),
    -- The application secret, sealed with context 'parley.auth.application_secret:<key>'.
    secret_encrypted   bytea NOT NULL,
    created_at         timestamptz NOT NULL,
    secret_rotated_at  timestamptz
);

CREATE INDEX applications_account_idx ON applications (account_id);

-- The application-server scheme: the last sequence accepted per (application, user).
CREATE TABLE user_sequences (
    application_id  uuid NOT NULL REFERENCES applications (id) ON DELETE CASCADE,
    user_id         text NOT NULL,
    last_sequence   bigint NOT NULL CHECK (last_sequence > 0),
    updated_at      timestamptz NOT NULL,
    PRIMARY KEY (application_id, user_id)
);

CREATE TABLE device_instances (
    id              uuid PRIMARY KEY,
    application_id  uuid NOT NULL REFERENCES applications (id) ON DELETE CASCADE,
    user_id         text NOT NULL,
    -- SHA-256 of the instance secret; the secret itself is only ever held by the device.
    secret_hash     bytea NOT NULL CHECK (length(secret_hash) = 32),
    scheme          text NOT NULL CHECK (scheme IN ('application_secret', 'application_server')),
    device_name     text NOT NULL DEFAULT '',
    created_at      timestamptz NOT NULL,
    last_token_at   timestamptz,
    revoked_at      timestamptz
);

CREATE INDEX device_instances_user_idx ON device_instances (application_id, user_id);

CREATE TABLE signing_keys (
    kid                     text PRIMARY KEY,
    -- PKCS#8 DER of the Ed25519 private key, sealed with context 'parley.auth.signing_key:<kid>'.
    private_key_encrypted   bytea NOT NULL,
    public_jwk              jsonb NOT NULL,
    created_at              timestamptz NOT NULL,
    retired_at              timestamptz
);

-- At most one active key at a time: rotation retires the old one in the same transaction.
CREATE UNIQUE INDEX signing_keys_one_active ON signing_keys ((true)) WHERE retired_at IS NULL;
CREATE INDEX signing_keys_retired_idx ON signing_keys (retired_at);
