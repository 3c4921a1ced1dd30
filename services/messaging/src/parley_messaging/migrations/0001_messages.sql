-- Messaging schema: every accepted message, its recipients (with when the message was
-- delivered to and read by each), and which device instances have acknowledged it.
-- A message and all its rows go together when it passes the retention time.

CREATE TABLE messages (
    -- The service's order of messages: fetches return them by it, oldest first.
    seq              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    application_key  text NOT NULL,
    -- Chosen by the sender's client; a retried send finds the message by it.
    message_id       uuid NOT NULL,
    sender_id        text NOT NULL,
    text             text NOT NULL,
    headers          jsonb NOT NULL,
    -- When the service accepted it (its clock).
    sent_at          timestamptz NOT NULL,
    UNIQUE (application_key, message_id)
);

-- The purge: the oldest messages first.
CREATE INDEX messages_sent_at_idx ON messages (sent_at);

CREATE TABLE recipients (
    message_seq      bigint NOT NULL REFERENCES messages (seq) ON DELETE CASCADE,
    recipient_id     text NOT NULL,
    -- Where the recipient stands in the message's list (the list is given back in order).
    position         smallint NOT NULL CHECK (position >= 0),
    application_key  text NOT NULL,
    -- When a first device of the recipient acknowledged the message (or it was read).
    delivered_at     timestamptz,
    read_at          timestamptz,
    PRIMARY KEY (message_seq, recipient_id)
);

-- A fetch: a user's messages in the service's order.
CREATE INDEX recipients_inbox_idx ON recipients (application_key, recipient_id, message_seq);

-- Which device instances (auth's device_instances.id) have a message. One key serves the
-- fetch ("not acknowledged by this instance") and the purge (by message).
CREATE TABLE device_acks (
    message_seq  bigint NOT NULL REFERENCES messages (seq) ON DELETE CASCADE,
    instance_id  uuid NOT NULL,
    acked_at     timestamptz NOT NULL,
    PRIMARY KEY (message_seq, instance_id)
);
