-- Push schema: each device's push registration, and each application's provider
-- credentials (sealed under the master key).

CREATE TABLE devices (
    application_key  text NOT NULL,
    user_id          text NOT NULL,
    -- The registered device (auth's registration id, from the access token).
    instance_id      text NOT NULL,
    -- What the app registered for app-server push (at most 1024 bytes; NULL: none).
    push_data        bytea,
    -- Managed push: the provider (parley.v1.PushProvider) and the device's token with it
    -- (NULL: none).
    provider         smallint,
    token            text,
    updated_at       timestamptz NOT NULL,
    PRIMARY KEY (application_key, user_id, instance_id),
    CHECK ((provider IS NULL) = (token IS NULL))
);

CREATE TABLE credentials (
    application_key  text NOT NULL,
    provider         smallint NOT NULL,
    -- JSON of the provider's credentials, sealed (AES-256-GCM, bound to app and provider).
    sealed           bytea NOT NULL,
    updated_at       timestamptz NOT NULL,
    PRIMARY KEY (application_key, provider)
);
