"""Settings of the stats service: the shared ones plus the stream STATS's limits, the
ingestion batches and how old a reported call may be."""

from __future__ import annotations

import dataclasses

from parley_service.settings import ServiceSettings, SettingsError, positive


@dataclasses.dataclass(frozen=True)
class StatsSettings(ServiceSettings):
    service_name: str = "stats"
    # Reports stay on the stream STATS this long (file storage) whether or not they were
    # stored yet: time to ride out a database outage, and to rebuild the table from.
    stats_stream_max_age_seconds: float = 7 * 86_400.0
    # A report sent again (same application, call and device) within this time is dropped
    # by the stream itself.
    stats_duplicate_window_seconds: float = 120.0
    # Ingestion takes up to stats_batch_max reports, or what arrived within
    # stats_batch_window_seconds of the first, into one transaction.
    stats_batch_max: int = 500
    stats_batch_window_seconds: float = 0.2
    # Reports of calls that started longer ago than this are refused.
    stats_report_max_age_seconds: float = 30 * 86_400.0
    # Stored reports of calls that started longer ago than this are deleted, by a round on
    # every replica each stats_purge_seconds.
    stats_retention_seconds: float = 90 * 86_400.0
    stats_purge_seconds: float = 3600.0

    def __post_init__(self) -> None:
        super().__post_init__()
        if not self.database_url:
            raise SettingsError("PARLEY_DATABASE_URL is not set: stats keeps its tables there")
        positive("PARLEY_STATS_STREAM_MAX_AGE_SECONDS", self.stats_stream_max_age_seconds)
        positive("PARLEY_STATS_DUPLICATE_WINDOW_SECONDS", self.stats_duplicate_window_seconds)
        positive("PARLEY_STATS_BATCH_MAX", self.stats_batch_max)
        positive("PARLEY_STATS_BATCH_WINDOW_SECONDS", self.stats_batch_window_seconds)
        positive("PARLEY_STATS_REPORT_MAX_AGE_SECONDS", self.stats_report_max_age_seconds)
        positive("PARLEY_STATS_RETENTION_SECONDS", self.stats_retention_seconds)
        positive("PARLEY_STATS_PURGE_SECONDS", self.stats_purge_seconds)
        if self.stats_retention_seconds < self.stats_report_max_age_seconds:
            raise SettingsError(
                "PARLEY_STATS_RETENTION_SECONDS must not be shorter than "
                "PARLEY_STATS_REPORT_MAX_AGE_SECONDS (a report accepted would be purged at once)"
            )
        if self.stats_duplicate_window_seconds > self.stats_stream_max_age_seconds:
            raise SettingsError(
                "PARLEY_STATS_DUPLICATE_WINDOW_SECONDS must not be longer than "
                "PARLEY_STATS_STREAM_MAX_AGE_SECONDS"
            )
        if self.stats_batch_max > 10_000:
            raise SettingsError(
                f"PARLEY_STATS_BATCH_MAX must be at most 10000, not {self.stats_batch_max}"
            )
