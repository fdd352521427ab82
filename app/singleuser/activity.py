"""Tell the hub when the owner last used this server, so the idle culler can judge it."""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import UTC, datetime

from app.singleuser.config import isoformat_z
from app.singleuser.hub import HubClient

log = logging.getLogger(__name__)

FIRST_REPORT_DELAY = 10
REPORT_INTERVAL = 300


class ActivityTracker:
    """The time of the last authenticated request, and what the hub has been told."""

    def __init__(self, hub: HubClient, activity_url: str, server_name: str = "") -> None:
        self.hub = hub
        self.activity_url = activity_url
        self.server_name = server_name
        self.last_activity: datetime | None = None
        self.last_reported: datetime | None = None

    def touch(self) -> None:
        """Record that the owner used the server just now."""
        self.last_activity = datetime.now(UTC)

    def report(self) -> bool:
        """Post the last activity to the hub if there was any since the last report."""
        moment = self.last_activity
        if not self.activity_url or moment is None or moment == self.last_reported:
            return False
        if not self.hub.post_activity(self.activity_url, self.server_name, isoformat_z(moment)):
            return False
        self.last_reported = moment
        log.debug("Reported activity at %s", isoformat_z(moment))
        return True


def run_activity_loop(
    tracker: ActivityTracker,
    sleep: Callable[[float], object],
    first_delay: float = FIRST_REPORT_DELAY,
    interval: float = REPORT_INTERVAL,
) -> None:
    """Report activity shortly after start, then every `interval` seconds, forever."""
    delay = first_delay
    while True:
        sleep(delay)
        delay = interval
        try:
            tracker.report()
        except Exception:
            # One bad report must not end reporting for the server's lifetime.
            log.exception("Activity report failed")
