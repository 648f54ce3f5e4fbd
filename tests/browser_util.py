"""Helpers for browser tests: load a Streamlit page, wait for its run, read exception boxes."""

from __future__ import annotations

import time


def wait_for_run(page, timeout: float = 90) -> None:
    """Wait until Streamlit has finished running the page's script."""
    page.wait_for_selector('[data-testid="stApp"]', timeout=timeout * 1000)
    time.sleep(0.3)
    page.wait_for_selector(
        '[data-testid="stApp"][data-test-script-state="notRunning"]', timeout=timeout * 1000
    )


def open_page(page, url: str, timeout: float = 90) -> None:
    page.goto(url, wait_until="domcontentloaded")
    wait_for_run(page, timeout)


def exceptions(page) -> list[str]:
    return page.locator('[data-testid="stException"]').all_inner_texts()
