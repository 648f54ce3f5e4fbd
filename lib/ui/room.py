"""Who may start work the whole room pays for (building a size, rebuilding an index, building
a configuration, running the evals, cancelling a job). On a laptop, with no
LAB_INSTRUCTOR_TOKEN, everyone may. In a room (`make workshop` sets a token), only a session
that opened the instructor link (`?instructor=<token>`); attendees use what is prepared and
are told to ask the instructor for the rest."""

from __future__ import annotations

import hmac
import os

import streamlit as st

TOKEN_ENV = "LAB_INSTRUCTOR_TOKEN"
PARAM = "instructor"
_KEY = "_lab_instructor"


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


def may(action: str) -> bool:
    """True when this session may start `action`; otherwise a message on the page says whom
    to ask, and nothing starts."""
    if instructor():
        return True
    st.info(
        f"**Ask the instructor.** {action} is shared work that the whole room pays for, so in "
        "this workshop the instructor starts it. Everything already prepared is yours to use.",
        icon=":material/school:",
    )
    return False
