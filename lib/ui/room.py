"""Who may start work the whole room pays for (building a size, rebuilding an index, building
a configuration, running the evals, cancelling a job). On a laptop, with no
LAB_INSTRUCTOR_TOKEN, everyone may. In a room (`make workshop` sets a token), only a session
that opened the instructor link (`?instructor=<token>`); attendees use what is prepared and
are told to ask the instructor for the rest.

Every session but a room's instructor may also start only so many pieces of such work a
minute (LIMIT_ENV, default DEFAULT_PER_MINUTE), on a laptop too: the limit protects the
machine, whoever clicks (the design's "limits hold even without the token"). It counts per
browser, so reloading the page does not reset it."""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime

import streamlit as st

from lib.dataset.sizing import SizeRefused
from lib.ui.text import plain

TOKEN_ENV = "LAB_INSTRUCTOR_TOKEN"
PARAM = "instructor"
_KEY = "_lab_instructor"
LIMIT_ENV = "LAB_EXPENSIVE_PER_MINUTE"
DEFAULT_PER_MINUTE = 6
WINDOW_SECONDS = 60.0
CLICKS_KEY = "_lab_expensive_clicks"  # when this session started shared work (time.time())


def in_a_room() -> bool:
    """True when an instructor token is set (a workshop): shared work is the instructor's."""
    return bool(os.environ.get(TOKEN_ENV))


def instructor() -> bool:
    """True when this session may start shared work: always on a laptop; in a room once the
    session opened the instructor link (remembered for the session, the token then leaves
    the address bar)."""
    token = os.environ.get(TOKEN_ENV)
    if not token:
        return True
    if st.session_state.get(_KEY):
        return True
    given = st.query_params.get(PARAM)
    if given is not None and hmac.compare_digest(str(given), token):
        st.session_state[_KEY] = True
        del st.query_params[PARAM]
        return True
    return False


def per_minute() -> int:
    """How many pieces of shared work a session may start a minute (LIMIT_ENV)."""
    value = os.environ.get(LIMIT_ENV, "").strip()
    try:
        return max(1, int(value)) if value else DEFAULT_PER_MINUTE
    except ValueError:
        return DEFAULT_PER_MINUTE


def may(action: str, *, shared: bool = True) -> bool:
    """True when this session may start `action` now (and the start is counted); otherwise a
    message on the page says whom to ask, or when to try again, and nothing starts. `shared`
    work (a build, a job in the queue) is the instructor's in a room; other heavy work (exact
    scans of one's own table, a measurement run again) is anyone's, within the limit."""
    if shared and not instructor():
        st.info(
            f"**Ask the instructor.** {plain(action)} is shared work that the whole room pays "
            "for, so in this workshop the instructor starts it. Everything already prepared is "
            "yours to use.",
            icon=":material/school:",
        )
        return False
    if in_a_room() and instructor():
        return True  # the room's work is the instructor's to start, as often as it takes
    now = time.time()
    browser = _browser()
    with _BROWSERS_LOCK:
        earlier = _BROWSERS.get(browser, []) if browser else []
        recent = [
            t for t in [*earlier, *st.session_state.get(CLICKS_KEY, [])] if now - t < WINDOW_SECONDS
        ]
        recent = sorted(set(recent))
        limit = per_minute()
        allowed = len(recent) < limit
        if allowed:
            recent.append(now)
        st.session_state[CLICKS_KEY] = recent
        if browser:
            _BROWSERS[browser] = recent
            _forget_idle_browsers(now)
    _record(action, allowed, now)
    if not allowed:
        again = recent[-limit] + WINDOW_SECONDS
        st.warning(
            f"**Not now: try again in {max(1, round(again - now))} s** (at "
            f"{datetime.fromtimestamp(again):%H:%M:%S}). This browser started {len(recent)} "
            f"pieces of heavy work in the last minute, and {limit} a minute is the limit "
            f"({LIMIT_ENV}), which keeps the machine answering. {plain(action)} did not start.",
            icon=":material/timer:",
        )
        return False
    return True


RECORD_ENV = "LAB_HEAVY_WORK_LOG"  # a file: every limited decision, a JSON line each


def _record(action: str, allowed: bool, at: float) -> None:
    """Append this decision to RECORD_ENV's file, when set: the server's own account of the
    limit (bench_load --abuse judges the limit by it, not by what a page happened to show)."""
    path = os.environ.get(RECORD_ENV)
    if not path:
        return
    from streamlit.runtime.scriptrunner import get_script_run_ctx

    ctx = get_script_run_ctx()
    line = {"session": ctx.session_id if ctx else None, "at": at, "allowed": allowed,
            "action": action}  # fmt: skip
    with _BROWSERS_LOCK, open(path, "a", encoding="utf-8") as f:
        f.write(json.dumps(line) + "\n")


# Heavy clicks by browser, so that reloading the page (a new session) does not reset the
# limit: a browser is its Streamlit XSRF cookie (kept across reloads), or, without one (a
# script), its address. A room's replicas are sticky, so a browser meets one process.
BROWSER_COOKIES = ("_streamlit_xsrf", "_xsrf")
_BROWSERS: dict[str, list[float]] = {}
_BROWSERS_LOCK = threading.Lock()


def _browser() -> str | None:
    """Who clicks, across reloads: a cookie the browser keeps, else its address; None when
    neither is known (a test's session: the session's own clicks count)."""
    try:
        cookies = st.context.cookies
        for name in BROWSER_COOKIES:
            value = cookies.get(name)
            if value:
                return f"cookie:{hashlib.sha256(_unmasked(value)).hexdigest()[:24]}"
        address = st.context.ip_address
    except Exception:  # no browser behind this run (AppTest, a bare script)
        return None
    return f"address:{address}" if address else None


def _unmasked(cookie: str) -> bytes:
    """The token an XSRF cookie carries. Tornado writes it masked ("2|mask|masked|time"), with
    a new mask at every page load; the token under it stays the browser's."""
    parts = cookie.split("|")
    if len(parts) == 4 and parts[0] == "2":
        try:
            mask, masked = bytes.fromhex(parts[1]), bytes.fromhex(parts[2])
        except ValueError:
            return cookie.encode()
        if mask:
            return bytes(b ^ mask[i % len(mask)] for i, b in enumerate(masked))
    return cookie.encode()


def _forget_idle_browsers(now: float) -> None:
    for key in [
        k for k, times in _BROWSERS.items() if not times or now - times[-1] > WINDOW_SECONDS
    ]:
        del _BROWSERS[key]


@contextmanager
def refusals() -> Iterator[None]:
    """Around queueing a build: a size or disk refusal (SizeRefused, checked again when the
    job is queued, whatever the widget allowed) is shown as plain text, and nothing is queued."""
    try:
        yield
    except SizeRefused as e:
        st.error(f"**Refused.** {plain(str(e))}", icon=":material/block:")
