"""Streamlit's private internals, read in this one module: the server's session manager
(closed sessions whose TTL passed are dropped and shut down here) for lib/core/memory.py's
Keeper. A test runs it against the locked Streamlit in a real server
(tests/test_memory.py, the expired-session test), so an upgrade that moves them fails there
and is mended here, not in a page."""

from __future__ import annotations

import asyncio
import concurrent.futures

import streamlit as st
from streamlit import runtime

from lib.core import memory
from lib.core.memory import Sessions


@st.cache_resource(show_spinner=False)
def memory_keeper():
    """This process's lib.core.memory.Keeper (started once, by the first page drawn; not under
    AppTest, which has no server)."""
    if not runtime.exists():
        return None
    return memory.start_keeper(server_sessions)[0]


def server_sessions():
    """The server's sessions, read on its event loop (the only thread that touches them).
    Closed sessions whose TTL passed are dropped here and shut down as a close would (Streamlit
    itself drops them, without a shutdown, at the next disconnect: their uploaded files stayed).
    None when the event loop is busy; Streamlit internals that changed raise, and stop it."""
    rt = runtime.get_instance()
    mgr = rt._session_mgr

    async def read() -> Sessions:
        with mgr._storage_lock:
            expired = mgr._session_storage._cache.expire()
        for _, info in expired:
            info.session.shutdown()
        return Sessions(mgr.num_active_sessions(), len(mgr.list_sessions()), len(expired))

    future = asyncio.run_coroutine_threadsafe(read(), rt._get_async_objs().eventloop)
    try:
        return future.result(timeout=10)
    except concurrent.futures.TimeoutError:
        future.cancel()
        return None
