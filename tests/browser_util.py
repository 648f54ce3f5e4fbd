"""Helpers for browser tests: load a Streamlit page, wait for its run, read exception boxes.

Waits are on the page's own state, never on the clock: `data-test-connection-state` and
`data-test-script-state`, the attributes Streamlit's frontend keeps on its root element."""

from __future__ import annotations

CONNECTED = '[data-testid="stApp"][data-test-connection-state="CONNECTED"]'
NOT_RUNNING = '[data-testid="stApp"][data-test-script-state="notRunning"]'
SKELETON = '[data-testid="stSkeleton"]'


def wait_connected(page, timeout: float = 90) -> None:
    """Wait until the page's websocket is open. While it is not (the first load, or after a
    dropped connection, from the first health ping to the new websocket) Streamlit disables
    every widget, and a click or a key press on one is lost."""
    page.wait_for_selector(CONNECTED, state="attached", timeout=timeout * 1000)


def wait_for_run(page, timeout: float = 90) -> None:
    """Wait until the run the page is in has finished: after a navigation (the root reads
    "initial" until the first run starts), or after something the new run draws is on the
    page. Right after a click the root still reads "notRunning" from the run before, until
    the server's answer arrives: first wait for what the click should draw."""
    wait_connected(page, timeout)
    page.wait_for_selector(NOT_RUNNING, state="attached", timeout=timeout * 1000)
    wait_drawn(page, timeout)


def wait_drawn(page, timeout: float = 90) -> None:
    """Wait until every element the run sent is drawn. Streamlit loads the code of some
    elements (st.code's highlighter, charts) on first use and shows a skeleton in their place
    until it arrives; on a busy machine that is after the run has finished, and the page's
    text lacks, say, the SQL of every st.code block."""
    page.wait_for_function(
        f"() => document.querySelectorAll('{SKELETON}').length === 0", timeout=timeout * 1000
    )


def open_page(page, url: str, timeout: float = 90) -> None:
    page.goto(url, wait_until="domcontentloaded")
    wait_for_run(page, timeout)


def exceptions(page) -> list[str]:
    return page.locator('[data-testid="stException"]').all_inner_texts()
