-- Stats schema: one row per call report, i.e. per call and reporting device (several
-- devices report one call: its caller, its callee). Written from the stream STATS in
-- batches; a report delivered again is skipped by the primary key.

CREATE TABLE call_reports (
    application_key  text NOT NULL,
    call_id          text NOT NULL,
    -- The reporting device (auth's registration id, from the access token).
    device_instance  text NOT NULL,
    user_id          text NOT NULL,
    -- parley.v1.CallKind, CallDirection (of this device's side), CallEndCause.
    kind             smallint NOT NULL,
    direction        smallint NOT NULL,
    end_cause        smallint NOT NULL,
    error_code       text NOT NULL,
    -- The far side: a user id, a phone number, a SIP address or a conference id.
    remote           text NOT NULL,
    started_at       timestamptz NOT NULL,
    -- When the stats service took the report.
    received_at      timestamptz NOT NULL,
    setup_ms         integer NOT NULL,
    ringing_ms       integer NOT NULL,
    talk_ms          integer NOT NULL,
    codec            text NOT NULL,
    rtt_ms           double precision NOT NULL,
    -- Of the media this device received: jitter, and the fraction of packets lost.
    jitter_ms        double precision NOT NULL,
    loss             double precision NOT NULL,
    -- 0 when no media flowed, else 1.0 to 4.5.
    mos              double precision NOT NULL,
    -- The report as uploaded (parley.v1.UploadCallReport), for what has no column.
    report           bytea NOT NULL,
    stored_at        timestamptz NOT NULL,
    PRIMARY KEY (application_key, call_id, device_instance)
);

-- Aggregates read one application's reports over a window of start times.
CREATE INDEX call_reports_started_idx ON call_reports (application_key, started_at);
