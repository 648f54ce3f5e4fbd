"""Where a browser asking for a nested page address (/Embedding_space/foo) should go.

Streamlit's pages live one segment deep (/Embedding_space). Its server answers any deeper
path with index.html, whose scripts then load from the wrong place and the page stays
blank; serve.py redirects such a request to the page instead, using `page_address`.
"""

from __future__ import annotations

import re

# First path segments (and any segment) Streamlit's server uses for itself: never pages.
RESERVED = frozenset({"_stcore", "static", "media", "component", "app", "favicon.png"})
# A page's address is made from its file name: letters, digits, underscores (and hyphens).
PAGE_NAME = re.compile(r"[\w-]+")


def page_address(path: str, accept: str, base_url_path: str = "") -> str | None:
    """The page to send a browser to, or None to leave the request alone.

    Only page loads are redirected (the browser accepts text/html), only when the path goes
    deeper than one segment under the base URL, and never for Streamlit's own routes, which
    the client also probes under a page's address (/Embedding_space/_stcore/health).
    """
    if "text/html" not in accept:
        return None
    base = "/".join(p for p in (base_url_path or "").split("/") if p)
    parts = [p for p in path.split("/") if p]
    if base:
        prefix = base.split("/")
        if parts[: len(prefix)] != prefix:
            return None
        parts = parts[len(prefix) :]
    if len(parts) < 2 or RESERVED.intersection(parts) or not PAGE_NAME.fullmatch(parts[0]):
        return None
    return "/" + "/".join([*([base] if base else []), parts[0]])
