"""Headless Chromium for the page tests: Debian's ``chromium``, driven by Playwright.

Playwright's own browser download is not used (nor reachable where CI runs): the browser is
the one on ``PATH`` (``chromium``), or the executable named by ``RECENV_TEST_CHROMIUM``, which
``.ci/run`` sets after installing Debian's package. Without either, the tests that need a
browser skip with the reason; with ``RECENV_TEST_CHROMIUM`` set, a browser that cannot start
fails them instead.

:class:`PageVisit` opens a page and records what a test checks: console errors, uncaught
exceptions, failed requests and every request to a host other than the page's own.
Screenshots go to ``RECENV_TEST_ARTIFACTS`` (CI keeps that directory) or the test's own
temporary directory.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

import pytest

ENV_CHROMIUM = "RECENV_TEST_CHROMIUM"
ENV_ARTIFACTS = "RECENV_TEST_ARTIFACTS"
LOCAL_HOSTS = frozenset({"127.0.0.1", "localhost", ""})


def chromium_executable() -> str:
    """The Chromium to drive, or skip the test (fail if ``RECENV_TEST_CHROMIUM`` is unusable)."""
    named = os.environ.get(ENV_CHROMIUM)
    if named:
        assert shutil.which(named), f"{ENV_CHROMIUM}={named} is not an executable"
        return shutil.which(named)  # type: ignore[return-value]
    for candidate in ("chromium", "chromium-browser"):
        found = shutil.which(candidate)
        if found:
            return found
    pytest.skip(f"no Chromium on PATH: install Debian's chromium or set {ENV_CHROMIUM}")


def artifacts_dir(fallback: Path) -> Path:
    """Where screenshots go: ``RECENV_TEST_ARTIFACTS`` if set, else ``fallback``."""
    directory = Path(os.environ.get(ENV_ARTIFACTS) or fallback)
    directory.mkdir(parents=True, exist_ok=True)
    return directory


@dataclass
class PageVisit:
    """What happened while a page was open."""

    page: object
    console_errors: list[str] = field(default_factory=list)
    page_errors: list[str] = field(default_factory=list)
    failed_requests: list[str] = field(default_factory=list)
    external_requests: list[str] = field(default_factory=list)

    def assert_clean(self) -> None:
        """No console error, no uncaught exception, no failed or external request."""
        assert not self.console_errors, self.console_errors
        assert not self.page_errors, self.page_errors
        assert not self.failed_requests, self.failed_requests
        assert not self.external_requests, self.external_requests


@contextmanager
def browser() -> Iterator[object]:
    """A headless Chromium (Playwright's ``Browser``), closed on exit."""
    from playwright.sync_api import sync_playwright

    executable = chromium_executable()
    with sync_playwright() as playwright:
        # as root (CI containers) Chromium's sandbox cannot start; the pages are our own
        launched = playwright.chromium.launch(
            executable_path=executable, args=["--no-sandbox", "--disable-gpu"]
        )
        try:
            yield launched
        finally:
            launched.close()


@contextmanager
def visit(
    launched: object,
    url: str,
    *,
    headers: dict[str, str] | None = None,
    width: int = 1280,
    height: int = 900,
) -> Iterator[PageVisit]:
    """Open ``url`` in a new page and record console errors and requests to other hosts.

    Requests to hosts other than loopback are aborted as well as recorded, so that a page
    that would reach the internet fails here even on a machine that has it.
    """
    context = launched.new_context(  # type: ignore[attr-defined]
        viewport={"width": width, "height": height}, extra_http_headers=headers or {}
    )
    page = context.new_page()
    record = PageVisit(page)

    def route(request_route: object) -> None:
        request = request_route.request  # type: ignore[attr-defined]
        scheme, host = urlsplit(request.url).scheme, urlsplit(request.url).hostname or ""
        local = host in LOCAL_HOSTS or (scheme == "file" and not host)
        if local or scheme in ("data", "blob", "about"):
            request_route.continue_()  # type: ignore[attr-defined]
        else:
            record.external_requests.append(request.url)
            request_route.abort()  # type: ignore[attr-defined]

    page.route("**/*", route)
    page.on(
        "console",
        lambda message: (
            record.console_errors.append(message.text) if message.type == "error" else None
        ),
    )
    page.on("pageerror", lambda error: record.page_errors.append(str(error)))
    page.on(
        "requestfailed",
        lambda request: (
            None
            if request.url in record.external_requests
            else record.failed_requests.append(f"{request.url}: {request.failure}")
        ),
    )
    try:
        page.goto(url)
        yield record
    finally:
        context.close()
