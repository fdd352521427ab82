"""The per-app objects the views share: settings, hub client, activity tracker, signers."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import cast
from urllib.parse import quote

from flask import current_app
from itsdangerous import URLSafeTimedSerializer

from app.singleuser.activity import ActivityTracker
from app.singleuser.config import SingleUserSettings, cookie_secret
from app.singleuser.hub import HubClient

EXTENSION = "flaskhub_singleuser"


@dataclass
class Services:
    """What one running single-user server holds for its whole life."""

    settings: SingleUserSettings
    hub: HubClient
    tracker: ActivityTracker
    started: datetime = field(default_factory=lambda: datetime.now(UTC))

    @classmethod
    def from_settings(cls, settings: SingleUserSettings) -> Services:
        """Create the hub client and activity tracker for these settings."""
        hub = HubClient(settings.api_url, settings.api_token)
        tracker = ActivityTracker(hub, settings.activity_url, settings.server_name)
        return cls(settings=settings, hub=hub, tracker=tracker)

    @property
    def login_cookie(self) -> str:
        """Return the name of the cookie holding the owner's OAuth token."""
        return f"flaskhub-user-{quote(self.settings.user, safe='')}"

    @property
    def state_cookie(self) -> str:
        """Return the name of the cookie holding a pending login's state and next URL."""
        return f"{self.login_cookie}-oauth-state"

    @property
    def login_signer(self) -> URLSafeTimedSerializer:
        """Return the signer of the login cookie."""
        return self._signer("flaskhub-singleuser-login")

    @property
    def state_signer(self) -> URLSafeTimedSerializer:
        """Return the signer of the OAuth state cookie."""
        return self._signer("flaskhub-singleuser-oauth-state")

    def _signer(self, salt: str) -> URLSafeTimedSerializer:
        return URLSafeTimedSerializer(cookie_secret(self.settings.api_token), salt=salt)


def services() -> Services:
    """Return the services of the current app."""
    return cast(Services, current_app.extensions[EXTENSION])
