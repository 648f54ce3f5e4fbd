"""The app as served: `streamlit run serve.py` (what `make run` does).

The pages are Streamlit's automatic multipage app (streamlit_app.py and pages/); this file
only wraps it in Streamlit's own ASGI app (st.App) with one fix in front: a page address
with more path after it, such as /Embedding_space/foo, is redirected to the page
(/Embedding_space). Streamlit serves its index.html for any unknown path, and that page
loads its scripts relative to the address, from /Embedding_space/static/…, which is
index.html again: a blank page forever. An unknown first segment is left to Streamlit,
which says "Page not found" and shows the home page.
"""

from __future__ import annotations

import streamlit as st
from starlette.middleware import Middleware
from starlette.responses import RedirectResponse
from starlette.types import ASGIApp, Receive, Scope, Send

from lib.core.nested_paths import page_address

ENTRYPOINT = "streamlit_app.py"


class NestedPageRedirect:
    """Send a browser asking for /Page/anything to /Page (and keep its query string)."""

    def __init__(self, app: ASGIApp):
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["method"] in ("GET", "HEAD"):
            accept = dict(scope["headers"]).get(b"accept", b"").decode("latin-1")
            target = page_address(scope["path"], accept, st.get_option("server.baseUrlPath"))
            if target is not None:
                query = scope.get("query_string", b"").decode("latin-1")
                url = target + (f"?{query}" if query else "")
                await RedirectResponse(url, status_code=302)(scope, receive, send)
                return
        await self.app(scope, receive, send)


app = st.App(ENTRYPOINT, middleware=[Middleware(NestedPageRedirect)])
