"""Text on the page: the SQL that ran, ready to paste into psql; user text shown as typed
(never as Markdown or HTML); an embedding error."""

from __future__ import annotations

import re

import streamlit as st

from lib.core.embeddings.base import EmbeddingError
from lib.core.psql import Script, short_value


def show_sql(script: Script) -> None:
    """Show a script as it ran, ready to paste into psql, and what its parameters are."""
    st.code(script.text(), language="sql")
    params = script.parameters()
    if params:
        st.caption(
            "`\\bind … \\g` binds the values to `$1`, `$2`, … (psql 16 or later): "
            + " · ".join(f"{plain(name)} = {plain(short_value(v))}" for name, v in params)
            + "."
        )


WORD_JOINER = "\u2060"  # invisible, zero width


def plain(text: str) -> str:
    """`text` escaped for st.markdown and friends, so that it shows as typed: no link, no
    emphasis, no math, no HTML, no emoji shortcode.

    Backslash escapes cover Markdown's syntax. Three things are found in the text after
    escapes are read, so they are broken another way: bare addresses (https://…, www.…,
    name@host), by an invisible word joiner; shortcodes (:smile:), by writing the colon as
    a character reference, which Streamlit's check for them does not read as a colon."""
    text = re.sub(r"(?i)(https?)(?=:)|(www)(?=\.)|(?=@)", lambda m: m.group(0) + WORD_JOINER, text)
    escaped = re.sub(r"([!-/:-@\[-`{-~])", r"\\\1", text)
    return escaped.replace("\\:", "&#58;")


def embedding_error(e: EmbeddingError) -> None:
    st.error(plain(str(e)), icon=":material/error:")  # it may quote a file's name
