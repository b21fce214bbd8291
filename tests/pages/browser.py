"""Support for the browser tests: Debian's Chromium driven by Playwright (never a browser
Playwright downloads), the app served on 127.0.0.1, and the checks run on every page —
accessibility (labels, ``lang``, contrast of the buttons, touch targets, no sideways
scrolling at 360 px) — and the screenshots for the README.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from werkzeug.serving import make_server

from shop.db import db

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
]
PHONE = {"width": 360, "height": 740}
#: where screenshots go: set SHANHUO_SCREENSHOTS=docs/screenshots to refresh the README's
SCREENSHOTS_ENV = "SHANHUO_SCREENSHOTS"

os.environ.setdefault("PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD", "1")


def skip_reason() -> str | None:
    if not Path(CHROMIUM).exists():
        return f"needs Debian's chromium at {CHROMIUM} (apt-get install -y chromium)"
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "needs the playwright package (pip install -e '.[dev]')"
    return None


class LiveServer:
    """The test app served by werkzeug in a thread, with real commits."""

    def __init__(self, app: Flask) -> None:
        self.server = make_server("127.0.0.1", 0, app, threaded=True)
        self.url = f"http://127.0.0.1:{self.server.server_port}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> LiveServer:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.thread.join(timeout=10)
        self.server.server_close()


@pytest.fixture
def live_server(committing: Flask) -> Iterator[LiveServer]:
    """The app on a free port. The test thread keeps its own app context for set-up;
    event streams last long enough for a browser to watch (not the 0.5 s of other tests)."""
    app = committing
    saved = app.config["LIVE_EVENTS_STREAM_S"]
    app.config["LIVE_EVENTS_STREAM_S"] = 60
    with app.app_context(), LiveServer(app) as server:
        try:
            yield server
        finally:
            db.session.remove()
            app.config["LIVE_EVENTS_STREAM_S"] = saved


def settle() -> None:
    """End the test thread's transaction: on SQLite every transaction takes the write lock
    (BEGIN IMMEDIATE), and the server's requests must not wait for ours."""
    db.session.remove()


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    reason = skip_reason()
    if reason:
        pytest.skip(reason)
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield chromium
        finally:
            chromium.close()


@pytest.fixture
def phone(browser: Any, live_server: LiveServer) -> Iterator[Any]:
    """``phone()`` → a new page in its own browser context (its own cookies), 360×740."""
    contexts: list[Any] = []

    def open_page(lang: str = "zh-CN") -> Any:
        context = browser.new_context(viewport=PHONE, locale=lang, base_url=live_server.url)
        context.set_default_timeout(15_000)
        contexts.append(context)
        return context.new_page()

    yield open_page
    for context in contexts:
        context.close()


@pytest.fixture
def screenshot(tmp_path: Path) -> Any:
    directory = Path(os.environ.get(SCREENSHOTS_ENV) or tmp_path)
    directory.mkdir(parents=True, exist_ok=True)

    def take(page: Any, name: str) -> Path:
        path = directory / f"{name}.png"
        page.screenshot(path=str(path), full_page=False)
        assert path.stat().st_size > 1000
        return path

    return take


def sign_in(page: Any, email: str, password: str) -> None:
    page.goto("/login")
    page.fill("#email", email)
    page.fill("#password", password)
    page.click("main form button[type=submit]")
    page.wait_for_load_state()


ACCESSIBILITY_CHECK = """
() => {
  const problems = [];
  const lang = document.documentElement.getAttribute("lang");
  if (!lang) problems.push("<html> has no lang");
  const visible = (el) => !!(el.offsetWidth || el.offsetHeight || el.getClientRects().length)
    && getComputedStyle(el).visibility !== "hidden";
  for (const el of document.querySelectorAll("input, select, textarea")) {
    if (el.type === "hidden") continue;
    const named = (el.labels && el.labels.length) || el.getAttribute("aria-label")
      || el.getAttribute("aria-labelledby");
    if (!named) problems.push("no label: " + (el.name || el.id));
  }
  const rgba = (text) => {
    const parts = text.match(/rgba?\\(([^)]+)\\)/)[1].split(",").map(parseFloat);
    return parts.length === 4 ? parts : parts.concat([1]);
  };
  const background = (el) => {
    for (; el; el = el.parentElement) {
      const colour = rgba(getComputedStyle(el).backgroundColor);
      if (colour[3] > 0) return colour;
    }
    return [255, 255, 255, 1];
  };
  const luminance = (c) => {
    const channel = (v) => {
      v /= 255;
      return v <= 0.03928 ? v / 12.92 : Math.pow((v + 0.055) / 1.055, 2.4);
    };
    return 0.2126 * channel(c[0]) + 0.7152 * channel(c[1]) + 0.0722 * channel(c[2]);
  };
  const contrasts = [];
  for (const el of document.querySelectorAll(".btn, button")) {
    if (!visible(el)) continue;
    const fg = luminance(rgba(getComputedStyle(el).color));
    const bg = luminance(background(el));
    const ratio = (Math.max(fg, bg) + 0.05) / (Math.min(fg, bg) + 0.05);
    contrasts.push(ratio);
    if (ratio < 4.5) problems.push("contrast " + ratio.toFixed(2) + ": " + el.textContent.trim());
  }
  // All other text too: every element with text of its own, against what is behind it.
  for (const el of document.querySelectorAll("body *")) {
    if (!visible(el) || el.closest(".btn, button")) continue;
    const own = Array.prototype.some.call(el.childNodes,
      (n) => n.nodeType === 3 && n.textContent.trim());
    if (!own) continue;
    const fg = luminance(rgba(getComputedStyle(el).color));
    const bg = luminance(background(el));
    const ratio = (Math.max(fg, bg) + 0.05) / (Math.min(fg, bg) + 0.05);
    if (ratio < 4.5)
      problems.push("text contrast " + ratio.toFixed(2) + ": " + el.textContent.trim());
  }
  const targets = document.querySelectorAll(
    ".btn, button, input:not([type=hidden]), select, textarea, header a");
  for (const el of targets) {
    if (!visible(el)) continue;
    const box = el.getBoundingClientRect();
    if (box.width < 44 || box.height < 44)
      problems.push("small target " + Math.round(box.width) + "x" + Math.round(box.height)
        + ": " + (el.textContent.trim() || el.name || el.tagName));
  }
  if (document.documentElement.scrollWidth > window.innerWidth + 1)
    problems.push("scrolls sideways: " + document.documentElement.scrollWidth + "px");
  return {problems, buttons: contrasts.length};
}
"""


def check_accessible(page: Any) -> None:
    """Labels on inputs, ``lang``, WCAG contrast ≥ 4.5:1 on buttons, targets ≥ 44 px,
    nothing wider than the phone."""
    result = page.evaluate(ACCESSIBILITY_CHECK)
    assert result["problems"] == [], f"{page.url}: {result['problems']}"
    assert result["buttons"] > 0, f"{page.url}: no buttons measured"
