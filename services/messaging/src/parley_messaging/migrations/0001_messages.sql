-- Messaging schema: every accepted message, its recipients (with when the message was
-- delivered to and read by each), and which device instances have acknowledged it.
-- A message and all its rows go together when it passes the retention time.
--
-- Device events are at most once and the service may die between a commit and the publish
-- of its events, so what was told is recorded too (the *told_at columns): the redelivery
-- sweeper (redeliver.py) tells again whatever was committed but not told.

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
    -- When MessageIncoming to every recipient and MessageSent to the sender were taken by
    -- the device events (NULL: not yet, or not known; the sweeper tells it again).
    told_at          timestamptz,
    UNIQUE (application_key, message_id)
);

-- The purge: the oldest messages first.
CREATE INDEX messages_sent_at_idx ON messages (sent_at);
-- The sweeper: messages not told yet (few: only those whose events failed or were cut off).
CREATE INDEX messages_untold_idx ON messages (sent_at) WHERE told_at IS NULL;

CREATE TABLE recipients (
    message_seq      bigint NOT NULL REFERENCES messages (seq) ON DELETE CASCADE,
    recipient_id     text NOT NULL,
    -- Where the recipient stands in the message's list (the list is given back in order).
    position         smallint NOT NULL CHECK (position >= 0),
    application_key  text NOT NULL,
    -- When a first device of the recipient acknowledged the message (or it was read).
    delivered_at     timestamptz,
    read_at          timestamptz,
    -- When MessageDelivered (MessageRead) of this recipient was taken by the device events
    -- to the sender's devices.
    delivered_told_at timestamptz,
    read_told_at     timestamptz,
    -- When the sweeper last took this undelivered row to tell MessageIncoming again (told
    -- again when the recipient had a device online).
    retold_at        timestamptz,
    PRIMARY KEY (message_seq, recipient_id)
);

-- A fetch: a user's messages in the service's order.
CREATE INDEX recipients_inbox_idx ON recipients (application_key, recipient_id, message_seq);
-- The sweeper: receipts not told yet, and rows not delivered yet (by message, so a round
-- starts at the first message of its time span).
CREATE INDEX recipients_delivered_untold_idx ON recipients (delivered_at)
    WHERE delivered_at IS NOT NULL AND delivered_told_at IS NULL;
CREATE INDEX recipients_read_untold_idx ON recipients (read_at)
    WHERE read_at IS NOT NULL AND read_told_at IS NULL;
CREATE INDEX recipients_undelivered_idx ON recipients (message_seq) WHERE delivered_at IS NULL;

-- Which device instances (auth's device_instances.id) have a message. One key serves the
-- fetch ("not acknowledged by this instance") and the purge (by message).
CREATE TABLE device_acks (
    message_seq  bigint NOT NULL REFERENCES messages (seq) ON DELETE CASCADE,
    instance_id  uuid NOT NULL,
    acked_at     timestamptz NOT NULL,
    PRIMARY KEY (message_seq, instance_id)
);
