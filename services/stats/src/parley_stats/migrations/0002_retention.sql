-- Retention deletes the oldest reports of every application by their calls' start times.
CREATE INDEX call_reports_age_idx ON call_reports (started_at);
