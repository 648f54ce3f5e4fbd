"""A client that speaks Streamlit's own websocket protocol, as one browser tab does.

    session = StreamlitSession("http://127.0.0.1:8501")
    await session.connect()
    run = await session.open("Distance metrics")        # the page's run, timed
    run = await session.set_widget("dm_metric", "Euclidean (L2)  `<->`")
    session.texts()                                       # what the page shows now
    await session.close()

It does what the browser's frontend does on the wire, and nothing it draws: it fetches the
page (so a cookie-sticky proxy routes it like a browser), opens `/_stcore/stream`, sends
`rerun_script` BackMsgs (the page by name first, then by its `page_script_hash`, widget
states, the `fragment_id` of a widget inside an `st.fragment`), and reads the ForwardMsgs
back into the page's elements. Like the frontend it keeps a cache of the messages the
server marks cacheable and lists their hashes in every rerun, so the server sends
references (`ref_hash`) for what this client already holds, and it expires them after
`max_cached_message_age` runs.

A run ends at its `script_finished` (success, or fragment success); a run that ends early
for a rerun (a callback's `st.rerun()`) is followed to the run that replaces it. Its
`RunResult` says how long that took from sending the BackMsg, and whether it failed: an
exception element or compile error, a timeout, a disconnect, a page not found, or a cache
reference this client could not resolve. Error alerts the page drew (`st.error`) are
listed apart: they are the page's own messages, not failures of the run.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import time
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import httpx
from streamlit.proto.Alert_pb2 import Alert
from streamlit.proto.BackMsg_pb2 import BackMsg
from streamlit.proto.ClientState_pb2 import ClientState
from streamlit.proto.ForwardMsg_pb2 import ForwardMsg
from streamlit.proto.WidgetStates_pb2 import WidgetState
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

STREAM_PATH = "_stcore/stream"
XSRF_COOKIE = "_streamlit_xsrf"

STATEFUL_BLOCKS = ("popover", "expandable")  # blocks that are widgets with on_change="rerun"

FINISHED = {
    ForwardMsg.FINISHED_SUCCESSFULLY: "ok",
    ForwardMsg.FINISHED_FRAGMENT_RUN_SUCCESSFULLY: "ok",
    ForwardMsg.FINISHED_WITH_COMPILE_ERROR: "compile_error",
}


@dataclass
class RunResult:
    """One request's run, as the browser would have seen it."""

    status: str  # ok, compile_error, timeout, disconnected, page_not_found, cache_miss, refused
    seconds: float  # from sending the BackMsg to its script_finished (or the failure)
    fragment: bool = False  # a fragment run, not the whole page
    exceptions: list[str] = field(default_factory=list)  # exception elements drawn
    error_alerts: list[str] = field(default_factory=list)  # st.error messages drawn
    bytes_received: int = 0
    messages: int = 0

    @property
    def failed(self) -> bool:
        return self.status != "ok" or bool(self.exceptions)

    @property
    def failure(self) -> str | None:
        """What went wrong, in a few words (None when nothing did)."""
        if self.status != "ok":
            return self.status
        if self.exceptions:
            return "exception"
        return None


@dataclass
class Node:
    """One element or block of the page, where the last delta put it."""

    path: tuple[int, ...]
    element: Any  # streamlit.proto.Element_pb2.Element, or None for a block
    run_id: str
    fragment_id: str
    script_hash: str
    block: Any = None  # streamlit.proto.Block_pb2.Block, for a block

    @property
    def kind(self) -> str:
        if self.element is None:
            which = self.block.WhichOneof("type") if self.block is not None else None
            return which if which in STATEFUL_BLOCKS else "block"
        return self.element.WhichOneof("type")

    @property
    def proto(self) -> Any:
        """The element's own message (the `markdown`, the `slider`, …), or a stateful block's
        (a popover or expander opened with on_change="rerun")."""
        if self.element is None:
            return getattr(self.block, self.kind) if self.kind in STATEFUL_BLOCKS else None
        return getattr(self.element, self.kind)


@dataclass(frozen=True)
class Widget:
    id: str
    kind: str  # the element type: text_input, slider, button_group, …
    label: str
    fragment_id: str  # "" outside any fragment
    proto: Any

    @property
    def key(self) -> str | None:
        """The user's `key=`, which Streamlit embeds in the widget id ($$ID-<hash>-<key>)."""
        key = self.id.split("-", maxsplit=2)[-1]
        return None if key == "None" else key


@dataclass
class _CacheEntry:
    msg: ForwardMsg
    run_count: int
    fragment_id: str


@dataclass
class _Pending:
    sent_at: float
    future: asyncio.Future
    fragment: bool
    run_id: str | None = None  # the run serving this request, once its new_session came
    exceptions: list[str] = field(default_factory=list)
    error_alerts: list[str] = field(default_factory=list)
    page_not_found: bool = False
    cache_miss: bool = False
    bytes_received: int = 0
    messages: int = 0


class StreamlitSession:
    """One browser tab's session of a Streamlit app, over its websocket."""

    def __init__(self, url: str, *, timeout: float = 30.0) -> None:
        parts = urlsplit(url.rstrip("/"))
        self.http_url = urlunsplit((parts.scheme, parts.netloc, parts.path, "", ""))
        ws_scheme = "wss" if parts.scheme == "https" else "ws"
        self.ws_url = urlunsplit((ws_scheme, parts.netloc, f"{parts.path}/{STREAM_PATH}", "", ""))
        self.origin = f"{parts.scheme}://{parts.netloc}"
        self.timeout = timeout
        self.session_id = ""
        self.pages: dict[str, Any] = {}  # page_script_hash -> AppPage
        self.main_script_hash = ""
        self.page_script_hash = ""  # the page shown now
        self.max_cached_message_age = 2
        self.auto_reruns: dict[str, float] = {}  # fragment_id -> interval the page asked for
        self.disconnected = False
        self._navigation_seen = False
        self._ws: ClientConnection | None = None
        self._reader: asyncio.Task | None = None
        self._nodes: dict[tuple[int, ...], Node] = {}
        self._widget_states: dict[str, WidgetState] = {}
        self._cache: dict[str, _CacheEntry] = {}
        self._run_count = 0
        self._run_id = ""
        self._run_fragments: tuple[str, ...] = ()
        self._pending: _Pending | None = None
        self.cookies: dict[str, str] = {}  # what the server set when the page was fetched
        self._file_urls: dict[str, asyncio.Future] = {}  # request_id -> FileURLsResponse

    def _reset(self) -> None:
        """A new connection is a new session: nothing of the last one carries over."""
        self.session_id = ""
        self.page_script_hash = ""
        self.pages = {}
        self._navigation_seen = False
        self.auto_reruns.clear()
        self._nodes.clear()
        self._widget_states.clear()
        self._cache.clear()
        self._run_count = 0
        self._run_id = ""
        self._run_fragments = ()

    # ---- connection ------------------------------------------------------------------

    async def connect(self, page_path: str = "") -> None:
        """Fetch the page as a browser would (cookies and all), then open the websocket."""
        cookies: dict[str, str] = {}
        async with httpx.AsyncClient(timeout=self.timeout, trust_env=False) as http:
            for path in (f"/{page_path}", "/_stcore/health"):
                sent = {"Cookie": _cookie_header(cookies)} if cookies else {}
                response = await http.get(self.http_url + path, headers=sent)
                response.raise_for_status()
                for header in response.headers.get_list("set-cookie"):
                    name, _, rest = header.partition("=")
                    cookies[name.strip()] = rest.split(";", 1)[0]
        headers = {"Cookie": _cookie_header(cookies)} if cookies else {}
        self.cookies = cookies
        self._reset()
        # The frontend passes the XSRF token as the second subprotocol entry.
        protocols = ["streamlit"] + ([cookies[XSRF_COOKIE]] if XSRF_COOKIE in cookies else [])
        self._ws = await connect(
            self.ws_url,
            subprotocols=protocols,  # type: ignore[arg-type]
            origin=self.origin,  # type: ignore[arg-type]
            additional_headers=headers,
            max_size=None,
            proxy=None,
            open_timeout=self.timeout,
        )
        self.disconnected = False
        self._reader = asyncio.create_task(self._read(self._ws))

    async def close(self) -> None:
        """Close the websocket, as closing the tab does (the server keeps the session a
        while, `server.disconnectedSessionTTL`, in case the tab comes back)."""
        if self._ws is not None:
            with contextlib.suppress(Exception):
                await self._ws.close()
        if self._reader is not None:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await asyncio.wait_for(self._reader, 5)
        self._ws = None
        self._reader = None

    async def __aenter__(self) -> StreamlitSession:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    # ---- what a user does ------------------------------------------------------------

    async def open(self, page: str) -> RunResult:
        """Open a page, by its name ("Distance metrics") or URL path ("Distance_metrics"),
        as a click on its sidebar link does; the first page of a session connects first,
        as opening its URL does."""
        if self._ws is None or self.disconnected:
            await self.close()
            path = page.replace(" ", "_").replace("-", "_")  # "Re-embedding": Re_embedding
            await self.connect(path)
            return await self._rerun(page_name=path)
        page_hash = self.page_hash(page)
        # Like the frontend, keep only the states of widgets that a common script drew
        # (the entrypoint of an st.navigation app), not those of the page being left.
        common = {
            _widget_id(n) for n in self._nodes.values() if n.script_hash != self.page_script_hash
        }
        self._widget_states = {k: v for k, v in self._widget_states.items() if k in common}
        return await self._rerun(page_script_hash=page_hash)

    async def rerun(self) -> RunResult:
        """Rerun the page shown now with the current widget states (the menu's Rerun)."""
        return await self._rerun(page_script_hash=self.page_script_hash)

    async def set_widget(self, label_or_key: str, value: Any) -> RunResult:
        """Give a widget a new value, as a user does, and wait for the rerun it causes:
        the fragment's if the widget is inside an `st.fragment`, else the page's."""
        widget = self.widget(label_or_key)
        state = widget_state(widget, value)
        if not state.HasField("trigger_value"):
            self._widget_states[widget.id] = state
            return await self._rerun(
                page_script_hash=self.page_script_hash, fragment_id=widget.fragment_id
            )
        # A button's trigger is sent once, with the other widgets' states.
        return await self._rerun(
            page_script_hash=self.page_script_hash,
            fragment_id=widget.fragment_id,
            extra=[state],
        )

    def fill(self, label_or_key: str, value: Any) -> None:
        """Give a widget inside a form a value, as typing into it does: nothing runs until
        the form's submit button is pressed (`set_widget` on it)."""
        widget = self.widget(label_or_key)
        self._widget_states[widget.id] = widget_state(widget, value)

    async def upload(self, label_or_key: str, name: str, data: bytes) -> tuple[int, RunResult]:
        """Upload a file into a file_uploader as the frontend does: ask the session for an
        upload URL (a `file_urls_request` BackMsg), PUT the file there over HTTP
        (/_stcore/upload_file/<session>/<file_id>, multipart, with the XSRF token), then
        give the widget the uploaded file and wait for the rerun. Returns the PUT's HTTP
        status and the run (a refused upload, 413 for a file past server.maxUploadSize,
        changes no widget: its run is the one the page shows, status "refused")."""
        widget = self.widget(label_or_key)
        if self._ws is None or self.disconnected:
            return 0, RunResult("disconnected", 0.0)
        t0 = time.perf_counter()
        request_id = f"upload-{len(self._file_urls)}-{time.monotonic_ns()}"
        future = asyncio.get_running_loop().create_future()
        self._file_urls[request_id] = future
        msg = BackMsg()
        msg.file_urls_request.request_id = request_id
        msg.file_urls_request.session_id = self.session_id
        msg.file_urls_request.file_names.append(name)
        try:
            await self._ws.send(msg.SerializeToString())
            response = await asyncio.wait_for(future, self.timeout)
        except (TimeoutError, ConnectionClosed):
            return 0, RunResult("timeout", time.perf_counter() - t0)
        finally:
            self._file_urls.pop(request_id, None)
        urls = response.file_urls[0]
        headers = {"Cookie": _cookie_header(self.cookies)} if self.cookies else {}
        if XSRF_COOKIE in self.cookies:
            headers["X-Xsrftoken"] = self.cookies[XSRF_COOKIE]
        async with httpx.AsyncClient(timeout=self.timeout, trust_env=False) as http:
            put = await http.put(
                self.origin + urls.upload_url, files={"file": (name, data)}, headers=headers
            )
        if put.status_code >= 300:
            return put.status_code, RunResult("refused", time.perf_counter() - t0)
        state = WidgetState(id=widget.id)
        info = state.file_uploader_state_value.uploaded_file_info.add()
        info.file_id, info.name, info.size = urls.file_id, name, len(data)
        info.file_urls.CopyFrom(urls)
        self._widget_states[widget.id] = state
        result = await self._rerun(
            page_script_hash=self.page_script_hash, fragment_id=widget.fragment_id
        )
        result.seconds = time.perf_counter() - t0
        return put.status_code, result

    # ---- what the page shows ---------------------------------------------------------

    def nodes(self) -> list[Node]:
        """The page's elements and blocks, in page order (main area first, then sidebar)."""
        return [self._nodes[p] for p in sorted(self._nodes)]

    def texts(self) -> list[str]:
        """The text of every element that shows text, in page order."""
        return [t for n in self.nodes() if n.element is not None and (t := element_text(n))]

    def widgets(self) -> list[Widget]:
        found = []
        for n in self.nodes():
            wid = _widget_id(n)
            if wid:
                found.append(
                    Widget(wid, n.kind, getattr(n.proto, "label", ""), n.fragment_id, n.proto)
                )
        return found

    def widget(self, label_or_key: str) -> Widget:
        """The widget whose key or label is `label_or_key` (a key wins)."""
        widgets = self.widgets()
        for match in (lambda w: w.key == label_or_key, lambda w: w.label == label_or_key):
            hits = [w for w in widgets if match(w)]
            if hits:
                return hits[0]
        shown = ", ".join(f"{w.label!r} (key {w.key})" for w in widgets)
        raise LookupError(f"no widget {label_or_key!r} on the page; it shows {shown}")

    def page_hash(self, page: str) -> str:
        def plain(name: str) -> str:  # "Re-embedding", "Re embedding", "Re_embedding" alike
            return re.sub(r"[-_ ]+", " ", name).strip().lower()

        for page_hash, p in self.pages.items():
            if page == page_hash or plain(page) in (plain(p.page_name), plain(p.url_pathname)):
                return page_hash
        raise LookupError(
            f"no page {page!r}; the app has {[p.page_name for p in self.pages.values()]}"
        )

    # ---- the protocol ----------------------------------------------------------------

    async def _rerun(
        self,
        *,
        page_script_hash: str = "",
        page_name: str = "",
        fragment_id: str = "",
        extra: list[WidgetState] | None = None,
    ) -> RunResult:
        if self._pending is not None:
            raise RuntimeError("one request at a time: the previous run has not finished")
        msg = BackMsg()
        state: ClientState = msg.rerun_script
        state.page_script_hash = page_script_hash
        state.page_name = page_name
        state.fragment_id = fragment_id
        state.widget_states.widgets.extend(list(self._widget_states.values()) + (extra or []))
        state.cached_message_hashes.extend(self._cache)
        info = state.context_info
        info.timezone, info.timezone_offset, info.locale = "UTC", 0, "en-US"
        info.url, info.is_embedded, info.color_scheme = self.http_url, False, "light"
        loop = asyncio.get_running_loop()
        pending = _Pending(time.perf_counter(), loop.create_future(), fragment=bool(fragment_id))
        if self._ws is None or self.disconnected:
            return RunResult("disconnected", 0.0, pending.fragment)
        self._pending = pending
        try:
            await self._ws.send(msg.SerializeToString())
            return await asyncio.wait_for(asyncio.shield(pending.future), self.timeout)
        except TimeoutError:
            return self._result(pending, "timeout")
        except ConnectionClosed:
            self.disconnected = True
            return self._result(pending, "disconnected")
        finally:
            self._pending = None

    def _result(self, pending: _Pending, status: str) -> RunResult:
        if status == "ok" and pending.page_not_found:
            status = "page_not_found"
        if status == "ok" and pending.cache_miss:
            status = "cache_miss"
        return RunResult(
            status,
            time.perf_counter() - pending.sent_at,
            pending.fragment,
            pending.exceptions,
            pending.error_alerts,
            pending.bytes_received,
            pending.messages,
        )

    async def _read(self, ws: ClientConnection) -> None:
        try:
            async for data in ws:
                if isinstance(data, str):
                    continue
                msg = ForwardMsg()
                msg.ParseFromString(data)
                if self._pending is not None:
                    self._pending.bytes_received += len(data)
                    self._pending.messages += 1
                self._handle(msg)
        except ConnectionClosed:
            pass
        finally:
            self.disconnected = True
            pending = self._pending
            if pending is not None and not pending.future.done():
                pending.future.set_result(self._result(pending, "disconnected"))

    def _handle(self, msg: ForwardMsg) -> None:
        pending = self._pending
        if msg.WhichOneof("type") == "ref_hash":
            entry = self._cache.get(msg.ref_hash)
            if entry is None:
                if pending is not None:
                    pending.cache_miss = True
                return
            entry.run_count = self._run_count
            resolved = ForwardMsg()
            resolved.CopyFrom(entry.msg)
            resolved.metadata.CopyFrom(msg.metadata)
            msg = resolved
        elif msg.metadata.cacheable and msg.hash:
            if msg.hash in self._cache:
                self._cache[msg.hash].run_count = self._run_count
            else:
                self._cache[msg.hash] = _CacheEntry(msg, self._run_count, msg.delta.fragment_id)

        kind = msg.WhichOneof("type")
        if kind == "new_session":
            session = msg.new_session
            if session.HasField("initialize"):
                self.session_id = session.initialize.session_id
            self.main_script_hash = session.main_script_hash
            self.page_script_hash = session.page_script_hash
            self.max_cached_message_age = session.config.max_cached_message_age
            if not self._navigation_seen:
                self.pages = {p.page_script_hash: p for p in session.app_pages}
            self._run_id = msg.metadata.run.script_run_id
            self._run_fragments = tuple(msg.metadata.run.fragment_ids)
            if not self._run_fragments:
                self.auto_reruns.clear()
            if pending is not None:
                pending.run_id = self._run_id
        elif kind == "navigation":
            # The app's pages as its sidebar links them: the frontend takes them from here.
            # (A page opened by its URL first runs under a hash of its own, listed only in
            # its new_session.)
            self._navigation_seen = True
            self.pages = {p.page_script_hash: p for p in msg.navigation.app_pages}
            # …and the page that runs: a page opened by its URL is reported in new_session
            # under the main script's hash, which would run the home page if sent back.
            if msg.navigation.page_script_hash:
                self.page_script_hash = msg.navigation.page_script_hash
        elif kind == "delta":
            self._delta(msg, pending)
        elif kind == "page_not_found":
            if pending is not None:
                pending.page_not_found = True
        elif kind == "session_event":
            event = msg.session_event
            if event.WhichOneof("type") == "script_compilation_exception" and pending:
                pending.exceptions.append(_exception_text(event.script_compilation_exception))
        elif kind == "file_urls_response":
            future = self._file_urls.get(msg.file_urls_response.response_id)
            if future is not None and not future.done():
                future.set_result(msg.file_urls_response)
        elif kind == "auto_rerun":
            self.auto_reruns[msg.auto_rerun.fragment_id] = msg.auto_rerun.interval
        elif kind == "script_finished":
            self._finished(msg, pending)

    def _delta(self, msg: ForwardMsg, pending: _Pending | None) -> None:
        delta = msg.delta
        path = tuple(msg.metadata.delta_path)
        which = delta.WhichOneof("type")
        if which not in ("new_element", "add_block"):
            return  # transient spinners, rows added to a chart
        element = delta.new_element if which == "new_element" else None
        old = self._nodes.get(path)
        if old is not None and old.element is None and element is not None:
            # An element replaces a block: the block's children go with it.
            for p in [p for p in self._nodes if len(p) > len(path) and p[: len(path)] == path]:
                del self._nodes[p]
        self._nodes[path] = Node(
            path,
            element,
            self._run_id,
            delta.fragment_id,
            msg.metadata.active_script_hash,
            delta.add_block if element is None else None,
        )
        if element is None or pending is None:
            return
        if which == "new_element" and element.WhichOneof("type") == "exception":
            pending.exceptions.append(_exception_text(element.exception))
        elif element.WhichOneof("type") == "alert" and element.alert.format == Alert.ERROR:
            pending.error_alerts.append(element.alert.body)

    def _finished(self, msg: ForwardMsg, pending: _Pending | None) -> None:
        status = msg.script_finished
        run_id = msg.metadata.run.script_run_id
        if status in (
            ForwardMsg.FINISHED_SUCCESSFULLY,
            ForwardMsg.FINISHED_FRAGMENT_RUN_SUCCESSFULLY,
        ):
            self._clear_stale(run_id or self._run_id, status)
            self._expire_cache(status)
        if pending is None or pending.future.done() or pending.run_id is None:
            return
        if run_id and run_id != pending.run_id:
            return  # the end of a run from before this request
        if status == ForwardMsg.FINISHED_EARLY_FOR_RERUN:
            pending.run_id = None  # a callback or st.rerun() asked for another run: follow it
            return
        pending.future.set_result(self._result(pending, FINISHED[status]))

    def _clear_stale(self, run_id: str, status: int) -> None:
        """Drop what the finished run did not draw again (only inside its fragments, for a
        fragment run), and forget the states of widgets that are gone."""
        fragment_run = status == ForwardMsg.FINISHED_FRAGMENT_RUN_SUCCESSFULLY
        for path, node in list(self._nodes.items()):
            if node.run_id == run_id:
                continue
            if fragment_run and node.fragment_id not in self._run_fragments:
                continue
            del self._nodes[path]
        if not fragment_run:
            alive = {_widget_id(n) for n in self._nodes.values()}
            self._widget_states = {k: v for k, v in self._widget_states.items() if k in alive}

    def _expire_cache(self, status: int) -> None:
        """The frontend's ForwardMsgCache.incrementRunCount."""
        self._run_count += 1
        fragments = (
            self._run_fragments if status == ForwardMsg.FINISHED_FRAGMENT_RUN_SUCCESSFULLY else ()
        )
        for key, entry in list(self._cache.items()):
            if fragments and entry.fragment_id not in fragments:
                continue
            if self._run_count - entry.run_count > self.max_cached_message_age:
                del self._cache[key]


def widget_state(widget: Widget, value: Any) -> WidgetState:
    """The WidgetState the frontend sends when a user gives `widget` this value."""
    state = WidgetState(id=widget.id)
    kind = widget.kind
    if kind in ("text_input", "text_area"):
        state.string_value = str(value)
    elif kind == "slider" and widget.proto.type == widget.proto.SELECT_SLIDER:
        # A select_slider's state is its options as the page formats them; a number is an
        # option's index (its min, max and step are the indexes').
        options = list(widget.proto.options)
        values = list(value) if isinstance(value, list | tuple) else [value]
        chosen = [v if isinstance(v, str) else options[round(v)] for v in values]
        unknown = [v for v in chosen if v not in options]
        if unknown:
            raise ValueError(f"{widget.label!r} has no option {unknown[0]!r}; it has {options}")
        state.string_array_value.data.extend(chosen)
    elif kind == "slider":
        values = list(value) if isinstance(value, list | tuple) else [value]
        state.double_array_value.data.extend(float(v) for v in values)
    elif kind == "button_group":  # segmented_control, pills, feedback
        options = [o.content for o in widget.proto.options]
        values = value if isinstance(value, list | tuple) else [value]
        chosen = [options[v] if isinstance(v, int) else v for v in values]
        unknown = [v for v in chosen if v not in options]
        if unknown:
            raise ValueError(f"{widget.label!r} has no option {unknown[0]!r}; it has {options}")
        state.string_array_value.data.extend(chosen)
    elif kind in ("selectbox", "radio"):  # sent as the option's text, as the page shows it
        options = list(widget.proto.options)
        chosen = options[value] if isinstance(value, int) else value
        if chosen not in options:
            raise ValueError(f"{widget.label!r} has no option {chosen!r}; it has {options}")
        state.string_value = chosen
    elif kind in ("checkbox", *STATEFUL_BLOCKS):  # checkbox, toggle; a popover opened
        state.bool_value = bool(value)
    elif kind == "number_input":
        if widget.proto.data_type == widget.proto.INT:
            state.int_value = int(value)
        else:
            state.double_value = float(value)
    elif kind == "button":
        state.trigger_value = True
    else:
        raise NotImplementedError(f"setting a {kind} is not implemented in this client")
    return state


def element_text(node: Node) -> str:
    """The text an element shows: a markdown's body, a heading, an alert, code, …"""
    proto = node.proto
    kind = node.kind
    if kind in ("markdown", "heading", "alert", "text"):
        return proto.body
    if kind == "code":
        return proto.code_text
    if kind == "exception":
        return _exception_text(proto)
    if kind == "metric":
        return f"{proto.label}: {proto.body}"
    return ""


def _cookie_header(cookies: dict[str, str]) -> str:
    return "; ".join(f"{k}={v}" for k, v in cookies.items())


def _exception_text(exc: Any) -> str:
    return f"{exc.type}: {exc.message}".strip(": ")


def _widget_id(node: Node) -> str:
    proto = node.proto
    if proto is None or "id" not in proto.DESCRIPTOR.fields_by_name:
        return ""
    wid = proto.id
    return wid if wid.startswith("$$ID-") else ""
