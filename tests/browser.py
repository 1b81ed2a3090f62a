"""Headless Chromium for the browser tests (the cooperative dashboard, a real Home Assistant).

Playwright drives Debian's `/usr/bin/chromium`: Playwright's own browser download is not
possible on these machines, so nothing is downloaded. Each page's last state is saved as a
screenshot in `ci-artifacts/` (git-ignored) for a person to look at, also when the test fails.
Without Chromium the test is skipped with the reason.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from playwright.async_api import Error, async_playwright

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Iterator

    from playwright.async_api import Page

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
ARTIFACTS = Path(__file__).resolve().parent.parent / "ci-artifacts"
# Chromium starts and renders slowly on a loaded two-core machine (over 15 s at load 10).
TIMEOUT_MS = 60_000

requires_chromium = pytest.mark.skipif(
    CHROMIUM is None, reason="chromium is not installed (apt-get install chromium)"
)


def _without_faketime(environment: dict[str, str]) -> dict[str, str]:
    """The environment less scripts/test-at-hour's libfaketime preload: Chromium hangs under it.

    The browser runs on the machine's clock, as a member's browser would.
    """
    return {k: v for k, v in environment.items() if k != "LD_PRELOAD" and "FAKETIME" not in k}


@contextlib.contextmanager
def _machine_clock() -> Iterator[None]:
    """Starts Playwright's driver (a Node.js process; Chromium is its child) off libfaketime.

    Playwright copies `os.environ` for the driver when it starts and offers no other way in.
    """
    saved = dict(os.environ)
    os.environ.clear()
    os.environ.update(_without_faketime(saved))
    try:
        yield
    finally:
        os.environ.clear()
        os.environ.update(saved)


def artifact_path(name: str) -> Path:
    """Where the screenshot called `name` goes (any character outside [\\w.-] becomes _)."""
    ARTIFACTS.mkdir(exist_ok=True)
    return ARTIFACTS / f"{re.sub(r'[^\w.-]', '_', name)}.png"


async def screenshot(page: Page, name: str) -> Path:
    """Saves the whole page as `ci-artifacts/<name>.png` and returns the file."""
    path = artifact_path(name)
    await page.screenshot(path=path, full_page=True)
    return path


@contextlib.asynccontextmanager
async def browser_page(
    name: str, *, locale: str = "en-GB", viewport: tuple[int, int] = (1280, 900)
) -> AsyncIterator[Page]:
    """A fresh headless Chromium page with the browser's language `locale`.

    Its last state is saved as `ci-artifacts/<name>.png` when the block ends, however it ends.
    """
    if CHROMIUM is None:
        pytest.skip("chromium is not installed (apt-get install chromium)")
    with _machine_clock():
        playwright = await async_playwright().start()
    try:
        browser = await playwright.chromium.launch(
            executable_path=CHROMIUM,
            headless=True,
            args=["--no-sandbox", "--disable-gpu", "--disable-background-networking"],
            env=dict[str, str | float | bool](_without_faketime(dict(os.environ))),
        )
        try:
            context = await browser.new_context(
                locale=locale, viewport={"width": viewport[0], "height": viewport[1]}
            )
            context.set_default_timeout(TIMEOUT_MS)
            page = await context.new_page()
            try:
                yield page
            except BaseException:
                with contextlib.suppress(Exception):  # the test's own failure is the news
                    await screenshot(page, name)
                raise
            await screenshot(page, name)
        finally:
            await browser.close()
    finally:
        await playwright.stop()


async def text_of(page: Page, selector: str) -> str | None:
    """The first element's textContent; None while there is none or the page is navigating."""
    try:
        value = await page.evaluate(
            "(selector) => document.querySelector(selector)?.textContent ?? null", selector
        )
    except Error as error:
        if "Execution context was destroyed" in error.message:
            return None  # a link or form left the page: the next one is on its way
        raise
    return None if value is None else str(value)


# Walks the document and every open shadow root (Home Assistant's frontend is web components)
# for a text node that reads `text` and whose element is rendered visibly.
_SHOWS_TEXT = """(text) => {
  const walk = (root) => {
    const nodes = document.createTreeWalker(root, NodeFilter.SHOW_ELEMENT | NodeFilter.SHOW_TEXT);
    for (let node = nodes.nextNode(); node; node = nodes.nextNode()) {
      if (node.nodeType === Node.TEXT_NODE) {
        const element = node.parentElement ?? node.parentNode.host;
        if (node.textContent.trim() === text && element?.checkVisibility()) return true;
      } else if (node.shadowRoot && walk(node.shadowRoot)) {
        return true;
      }
    }
    return false;
  };
  return walk(document);
}"""


async def wait_for_text(page: Page, text: str) -> None:
    """Until the page shows `text` as a whole text node, also inside shadow roots: Playwright's
    text selectors miss a text a web component slots in from its light DOM."""
    await page.wait_for_function(_SHOWS_TEXT, arg=text, timeout=TIMEOUT_MS)
