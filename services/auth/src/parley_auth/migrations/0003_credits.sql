-- Call credits: each account has a balance and a ledger; calls to phone numbers are paid
-- at the rate of the longest matching prefix. Amounts are bigint micro-units of the
-- account's currency (1 unit = 1_000_000). No rates are seeded: operators set them.

CREATE TABLE credit_accounts (
    account   uuid PRIMARY KEY REFERENCES accounts (id),
    balance   bigint NOT NULL DEFAULT 0 CHECK (balance >= 0),
    currency  text NOT NULL DEFAULT 'USD' CHECK (currency ~ '^[A-Z]{3}$')
);

CREATE TABLE call_rates (
    -- '+' then up to 15 digits; '+' alone matches every number.
    prefix           text PRIMARY KEY CHECK (prefix ~ '^\+[0-9]{0,15}$'),
    rate_per_minute  bigint NOT NULL CHECK (rate_per_minute >= 0),
    description      text NOT NULL DEFAULT '',
    updated_at       timestamptz NOT NULL
);

-- Credit held for one call, from reserve until it is settled (by the sip service, or by the
-- sweeper once expires_at passes, for known_ms). The settlement's result stays on the row,
-- so settling again answers the same.
CREATE TABLE credit_reservations (
    application_key   text NOT NULL,
    call_id           text NOT NULL,
    account           uuid NOT NULL REFERENCES accounts (id),
    number            text NOT NULL,
    rate              bigint NOT NULL CHECK (rate >= 0),
    reserved          bigint NOT NULL CHECK (reserved >= 0),
    max_seconds       bigint NOT NULL CHECK (max_seconds >= 0),
    -- The call is known to have lasted at least this long (raised by touch).
    known_ms          bigint NOT NULL DEFAULT 0 CHECK (known_ms >= 0),
    created_at        timestamptz NOT NULL,
    expires_at        timestamptz NOT NULL,
    settled_at        timestamptz,
    settled_by        text CHECK (settled_by IN ('settle', 'sweep')),
    amount            bigint,
    duration_seconds  bigint,
    balance_after     bigint,
    PRIMARY KEY (application_key, call_id),
    CHECK ((settled_at IS NULL) = (amount IS NULL))
);

CREATE INDEX credit_reservations_open_idx ON credit_reservations (account)
    WHERE settled_at IS NULL;
CREATE INDEX credit_reservations_expiry_idx ON credit_reservations (expires_at)
    WHERE settled_at IS NULL;

CREATE TABLE credit_ledger (
    id                bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    account           uuid NOT NULL REFERENCES accounts (id),
    at                timestamptz NOT NULL,
    kind              text NOT NULL CHECK (kind IN ('topup', 'call')),
    -- Signed: a top-up adds, a call takes away.
    amount            bigint NOT NULL,
    balance_after     bigint NOT NULL,
    application_key   text,
    call_id           text,
    number            text,
    duration_seconds  bigint,
    rate_per_minute   bigint
);

CREATE INDEX credit_ledger_account_idx ON credit_ledger (account, id);
