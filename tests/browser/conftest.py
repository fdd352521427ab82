"""Fixtures for browser tests: one real hub per module and Debian's Chromium via Playwright.

The hub is started with the integration fixtures' `hub_env`/`start_hub`, so it is the
whole system (`flaskhub run`, real CHP, real user servers). Chromium is Debian's
(`/usr/bin/chromium`): never `playwright install`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest
from playwright.sync_api import Browser, BrowserContext, Page, Playwright, sync_playwright

from tests.integration.conftest import Hub, hub_env, start_hub

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
]
# Playwright timeouts (ms): spawning a server and the OAuth dance take a few seconds.
TIMEOUT_MS = 30_000


@pytest.fixture(scope="module")
def hub(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Hub]:
    """One real hub for the module, stopped (Ctrl-C) at the end."""
    data_dir = tmp_path_factory.mktemp("browser-hub") / "data"
    hub = start_hub(data_dir, hub_env(data_dir))
    try:
        yield hub
    finally:
        hub.stop()


@pytest.fixture(scope="module")
def playwright() -> Iterator[Playwright]:
    with sync_playwright() as p:
        yield p


@pytest.fixture(scope="module")
def browser(playwright: Playwright) -> Iterator[Browser]:
    browser = playwright.chromium.launch(
        executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True
    )
    try:
        yield browser
    finally:
        browser.close()


@pytest.fixture
def new_page(browser: Browser) -> Iterator[Callable[[], Page]]:
    """Make pages, each in its own fresh context (own cookies); all closed after the test."""
    contexts: list[BrowserContext] = []

    def make() -> Page:
        context = browser.new_context()
        context.set_default_timeout(TIMEOUT_MS)
        context.set_default_navigation_timeout(TIMEOUT_MS)
        contexts.append(context)
        return context.new_page()

    yield make
    for context in contexts:
        context.close()


@pytest.fixture
def page(new_page: Callable[[], Page]) -> Page:
    """A page in a fresh browser context."""
    return new_page()


@pytest.fixture
def context(browser: Browser) -> Iterator[BrowserContext]:
    """A fresh browser (own cookies) that accepts the test provider's certificate."""
    context = browser.new_context(ignore_https_errors=True)
    context.set_default_timeout(TIMEOUT_MS)
    context.set_default_navigation_timeout(TIMEOUT_MS)
    try:
        yield context
    finally:
        context.close()
