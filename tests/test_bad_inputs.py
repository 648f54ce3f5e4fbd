"""Bad inputs a new user tries (issue 9, part 5): each gets correct behaviour or a clear
message. The browser half is tests/test_bad_inputs_browser.py."""

import re

import pytest
from apptest_util import app_at

from lib.core.nested_paths import page_address
from lib.core.queries import MAX_CHARS, QueryError, check_text
from lib.dataset import sizing
from lib.lessons.metrics import rankings as metrics
from lib.ui.text import WORD_JOINER, plain

HTML = "text/html,application/xhtml+xml,*/*;q=0.8"


# ---- Recall's "Another size…" field -----------------------------------------------------


@pytest.mark.parametrize(
    "typed, rows",
    [("1e9", 1_000_000_000), ("1,000,000", 1_000_000), (" 250 000 ", 250_000),
     ("2.5e5", 250_000), ("100", 100), ("2000000000", 2_000_000_000)],
)  # fmt: skip
def test_a_row_count_is_read_as_people_type_it(typed, rows):
    assert sizing.parse_rows(typed) == rows


@pytest.mark.parametrize(
    "typed, message",
    [("99", "outside the range"), ("0", "outside the range"),
     ("2,000,000,001", "outside the range"), ("1e400", "outside the range"),
     ("250.5", "not a whole number"), ("-5", "not a number of rows"),
     ("ten", "not a number of rows"), ("", "Type a number of rows")],
)  # fmt: skip
def test_a_row_count_out_of_range_or_not_a_number_says_why(typed, message):
    with pytest.raises(ValueError, match=message):
        sizing.parse_rows(typed)


def test_a_billion_rows_is_in_range_and_refused_for_memory_not_range():
    n = sizing.parse_rows("1e9")
    plan = sizing.plan_size(n, 384, memory=24 * 1024**3, disk=None)
    assert not plan.ok and "in memory" in plan.reason and "range" not in plan.reason


# ---- Distance metrics' presets with fewer documents --------------------------------------


@pytest.mark.parametrize("n", [2, 3, 4, 8])
def test_the_zero_and_identical_presets_act_on_a_document_that_is_shown(n):
    names, docs, _ = metrics.split(metrics.example("zero", n))
    assert len(names) == n and len(metrics.zero_vectors(names, docs)) == 1
    names, docs, _ = metrics.split(metrics.example("identical", n))
    assert len(names) == n and len(metrics.identical_groups(names, docs)) == 1


# ---- Query text --------------------------------------------------------------------------


@pytest.mark.parametrize("text", ["", "   \n\t "])
def test_an_empty_query_is_refused(minilm, text):
    with pytest.raises(QueryError, match="empty"):
        check_text(minilm, text)


def test_a_very_long_query_is_refused_and_a_long_one_is_noted(minilm):
    with pytest.raises(QueryError, match="20,000 characters"):
        check_text(minilm, "words " * 3333 + "xx")
    long = check_text(minilm, "a small cat wearing a hat " * 100)
    assert long.truncated and len(long.text) < MAX_CHARS
    assert "reads at most 256 tokens" in long.note(minilm.info)


def test_user_text_is_escaped_for_markdown():
    """Every Markdown character is escaped and nothing else changes but invisible word
    joiners (tests/test_bad_inputs_browser.py checks what Streamlit then draws)."""
    text = "[free pizza](https://example.org) $x^2$ **b** <b>x</b> :smile: a_b `c` #h a@b.org"
    escaped = plain(text)
    unescaped = re.sub(r"\\(.)", r"\1", escaped.replace("&#58;", ":"))
    assert unescaped.replace(WORD_JOINER, "") == text
    assert not re.search(r"(?<!\\)[][()$^*<>_`#:]", escaped.replace("&#58;", ""))
    assert f"https{WORD_JOINER}" in escaped and f"{WORD_JOINER}\\@" in escaped


# ---- Nested page addresses ---------------------------------------------------------------


def test_a_nested_page_address_goes_to_its_page_and_streamlits_own_routes_pass():
    assert page_address("/Embedding_space/foo", HTML) == "/Embedding_space"
    assert page_address("/Embedding_space/a/b/c", HTML) == "/Embedding_space"
    assert page_address("/nope/deeper", HTML) == "/nope"  # Streamlit says "Page not found"
    assert page_address("/lab/Recall_at_scale/x", HTML, "lab") == "/lab/Recall_at_scale"
    for path in ("/", "/Embedding_space", "/Embedding_space/_stcore/health",
                 "/static/js/index.js", "/app/static/plotly.min.js", "/\\evil.com/x"):  # fmt: skip
        assert page_address(path, HTML) is None, path
    assert page_address("/Embedding_space/foo", "*/*") is None  # not a page load


# ---- Distance metrics page under AppTest -------------------------------------------------


@pytest.fixture
def metrics_page(pg_url, monkeypatch):
    at = app_at("pages/2_Distance_metrics.py", pg_url, monkeypatch)
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def messages(at) -> str:
    return "\n".join(e.value for kind in (at.error, at.info, at.warning) for e in kind)


def bind_line(at) -> str:
    """The plans block's first \\bind line: the query vector the page ranked with."""
    code = next(c.value for c in at.code if "EXPLAIN (ANALYZE" in c.value)
    return next(line for line in code.splitlines() if line.startswith("\\bind"))


@pytest.mark.db
def test_metrics_query_box_checks_empty_and_too_long_text(metrics_page):
    at = metrics_page
    before = bind_line(at)
    at.text_input(key="dm_query").set_value("   ").run()
    assert "the query is empty" in messages(at) and "a small cat" in messages(at)
    assert bind_line(at) == before  # the last query that worked is still ranked
    at.text_input(key="dm_query").set_value("x" * 20_000).run()
    assert "20,000 characters" in messages(at)
    at.text_input(key="dm_query").set_value("a small cat wearing a hat " * 100).run()
    assert "reads at most 256 tokens" in messages(at)
    assert not at.exception


@pytest.mark.db
def test_metrics_query_box_ranks_the_whole_sentence_and_a_pick_replaces_it(metrics_page):
    at = metrics_page
    cat = bind_line(at)
    at.text_input(key="dm_query").set_value("a small cat wearing a hat").run()
    hat = bind_line(at)
    assert hat != cat
    at.pills(key="dm_query_pick").set_value("a small cat").run()
    assert at.text_input(key="dm_query").value == "a small cat"
    assert bind_line(at) == cat


@pytest.mark.db
def test_zero_vector_preset_with_two_documents_makes_b_zero_and_says_so(metrics_page):
    at = metrics_page
    at.number_input(key="dm_doc_count").set_value(2).run()
    next(b for b in at.button if b.label == "Zero vector").click().run()
    assert not at.exception, [e.value for e in at.exception]
    assert "B is the zero vector" in messages(at)
    next(b for b in at.button if b.label == "Identical documents").click().run()
    assert "A and B are identical" in messages(at)
