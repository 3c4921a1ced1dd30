"""A minimal stats service for the fake gateway (client_double.py): it keeps every call report
uploaded (with the user and session that sent it), answers CallReportAccepted (stored: the
first report of a call by that user), and can be told to answer the next uploads with errors
(`fail_next`), every upload with one (`error`), none at all (`silent`), or each after a
while (`delay`, seconds)."""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

from parley_protocol.errors import ParleyError
from parley_protocol.pb import stats as stats_pb


@dataclass(frozen=True)
class Upload:
    user_id: str
    session_id: str
    report: stats_pb.UploadCallReport


@dataclass
class FakeStats:
    uploads: list[Upload] = field(default_factory=list)
    stored: dict[tuple[str, str], stats_pb.UploadCallReport] = field(default_factory=dict)
    error: ParleyError | None = None
    fail_next: deque[ParleyError] = field(default_factory=deque)
    silent: bool = False
    delay: float = 0.0

    def handle(
        self, user_id: str, session_id: str, report: stats_pb.UploadCallReport
    ) -> stats_pb.CallReportAccepted | None:
        """The answer to one upload (None: no answer); ParleyError for an error."""
        copy = stats_pb.UploadCallReport()
        copy.CopyFrom(report)
        self.uploads.append(Upload(user_id, session_id, copy))
        if self.silent:
            return None
        if self.fail_next:
            raise self.fail_next.popleft()
        if self.error is not None:
            raise self.error
        key = (user_id, report.call_id)
        first = key not in self.stored
        if first:
            self.stored[key] = copy
        return stats_pb.CallReportAccepted(stored=first)

    def reports_of(self, user_id: str) -> list[stats_pb.UploadCallReport]:
        """The reports stored for `user_id`, in the order they came."""
        return [report for (user, _), report in self.stored.items() if user == user_id]
