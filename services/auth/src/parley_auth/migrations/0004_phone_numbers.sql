-- Phone numbers the trunk delivers calls to, each mapped to the application user a call
-- from a phone to it rings (the sip service asks auth, parley.auth.number_lookup).

CREATE TABLE phone_numbers (
    number           text PRIMARY KEY CHECK (number ~ '^\+[0-9]{8,15}$'),
    application_key  text NOT NULL REFERENCES applications (key),
    user_id          text NOT NULL CHECK (length(user_id) BETWEEN 1 AND 40),
    updated_at       timestamptz NOT NULL
);

CREATE INDEX phone_numbers_application_idx ON phone_numbers (application_key);
