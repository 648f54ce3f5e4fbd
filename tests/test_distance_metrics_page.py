"""The Distance metrics page under AppTest: everything but the picture (a v2 component).

AppTest runs the page through the entrypoint (switch_page), as a browser would reach it.
"""

import pytest
from apptest_util import app_at

PAGE = "pages/2_Distance_metrics.py"


@pytest.fixture
def app(pg_url, monkeypatch):
    return app_at(PAGE, pg_url, monkeypatch)


def texts(at) -> str:
    parts = [m.value for m in at.markdown]
    for kind in (at.error, at.info, at.warning, at.success):
        parts += [e.value for e in kind]
    return "\n".join(parts)


def test_page_shows_rankings_sql_and_plans_without_exception(app):
    app.run()
    assert not app.exception, [e.value for e in app.exception]
    shown = texts(app)
    assert "Top document under Cosine `<=>`: **A**" in shown
    assert "✓ the same order as numpy" in shown
    assert "All three top-10 lists agree" in shown
    code = "\n".join(c.value for c in app.code)
    assert "WITH docs (name, embedding) AS" in code and "CREATE" not in code
    assert "Index Scan using" in code and "Disabled: true" in code


def test_zero_query_says_every_cosine_is_undefined(app):
    app.session_state["dm_points"] = {
        "A": (1.0, 0.6), "B": (4.0, -0.6), "C": (2.6, 1.9), "D": (-1.0, 2.0), "q": (0.0, 0.0)
    }  # fmt: skip
    app.run()
    assert not app.exception, [e.value for e in app.exception]
    shown = texts(app)
    assert "No top document under Cosine" in shown
    assert "The query is the zero vector" in shown


def test_identical_documents_explain_the_tie_break(app):
    app.run()
    next(b for b in app.button if b.label == "Identical documents").click().run()
    assert not app.exception, [e.value for e in app.exception]
    shown = texts(app)
    assert "C and D are identical" in shown and "Ties always come out as C, D" in shown
