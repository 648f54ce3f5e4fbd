"""Embedding space: drag a query through real vectors; the map's neighbours vs Postgres's."""

import pyarrow as pa
import streamlit as st

from lib.core.corpus import themes as corpus_themes
from lib.core.embeddings.base import EmbeddingError
from lib.core.embeddings.registry import model_choices
from lib.core.queries import (
    QueryError,
    check_text,
    embeds_images,
    image_input,
    image_vector,
    text_only_message,
)
from lib.core.uploads import EXTENSIONS
from lib.lessons.space.embedding_map import embedding_map, released, thumbnail_url
from lib.lessons.space.embedding_space import TOY_VECTOR, EmbeddingSpace, Query, cross_model_attempt
from lib.ui import connection, nav, resources, text

st.set_page_config(page_title="Embedding space", layout="wide")
nav.sidebar()

QUERY = "es_query"  # what the learner asked for last: a point, a text or the upload
GOOD = "es_good"  # the last request that worked, kept when a new one fails
MAP = "es_map"
THEMES = "es_themes"


@st.cache_resource(show_spinner="Projecting the items to 2-D…", max_entries=24)
def space_of(model_name: str, themes: tuple[str, ...]) -> EmbeddingSpace:
    """The map of the lesson's items and `themes` (shared by every session showing it)."""
    normalized = resources.model(model_name).info.normalized
    corpus = resources.corpus(model_name)
    return EmbeddingSpace.from_corpus(corpus, normalized=normalized, themes=themes)


def themes_shown(model_name: str) -> tuple[str, ...]:
    """The themes this session added to the map, in corpus order (one cache key per set)."""
    picked = set(st.session_state.get(THEMES) or ())
    return tuple(t for t in corpus_themes(resources.corpus(model_name).items) if t in picked)


@st.cache_data(max_entries=16, show_spinner="Embedding the image…")
def cached_image_vector(model_name: str, data: bytes, file_name: str):
    model = resources.model(model_name)
    return image_vector(model, image_input(model, data, file_name))


def ask_text() -> None:
    st.session_state[QUERY] = {"source": "text", "text": st.session_state.get("es_text", "")}


def ask_image() -> None:
    if st.session_state.get("es_image") is not None:
        st.session_state[QUERY] = {"source": "image"}


def ask_point() -> None:
    pos = released(MAP)
    if pos is not None:
        st.session_state[QUERY] = {
            "source": "point",
            "x": pos[0],
            "y": pos[1],
            "model": name,
            "themes": list(themes_shown(name)),
        }


def default_request(space: EmbeddingSpace) -> dict:
    start = space.start
    return {
        "source": "point",
        "x": start.x,
        "y": start.y,
        "model": space.model_name,
        "themes": list(space.themes),
    }


def resolve(request: dict, space: EmbeddingSpace) -> tuple[Query, list[str]]:
    """The query for a request; notes for the learner (a truncated text). Raises QueryError."""
    model = resources.model(space.model_name)
    if request["source"] == "point":
        if request.get("model") != space.model_name:
            raise QueryError("")  # a position on another model's map means nothing here
        themes = tuple(request.get("themes", ()))
        if themes == space.themes:
            return space.point_query(request["x"], request["y"]), []
        # Dropped on this model's map of other themes: the same blend, placed on this map.
        dropped_on = space_of(space.model_name, themes)
        blend = dropped_on.lift(request["x"], request["y"])[1]
        return space.blend_query(blend, "your point, from the other map"), []
    if request["source"] == "text":
        checked = check_text(model, request.get("text"))
        notes = [checked.note(model.info)] if checked.truncated else []
        vector = resources.query_vector(space.model_name, checked.text)
        return space.vector_query(vector, "text", f"“{_short(checked.text)}”"), notes
    upload = st.session_state.get("es_image")
    if upload is None:
        raise QueryError("")
    if not embeds_images(model):
        image_input(model, upload.getvalue(), upload.name)  # bad files get their own message
        raise QueryError(text_only_message(model))
    vector = cached_image_vector(space.model_name, upload.getvalue(), upload.name)
    return space.vector_query(vector, "image", f"photo: {_short(upload.name)}"), []


def _short(text: str, n: int = 40) -> str:
    return text if len(text) <= n else text[: n - 1] + "…"


st.title("Embedding space")
st.markdown(
    "An embedding model turns a text (or a photo) into a list of numbers: a point in a space "
    "with hundreds of dimensions. Inputs that mean similar things land close together, and "
    "vector search is finding the points closest to a query. Below, every dot is a real vector "
    "from the corpus, and every list of neighbours comes from a query that just ran in "
    "PostgreSQL. The map flattens the space to two dimensions so you can see it — and that "
    "flattening is part of the lesson."
)

db = connection.database()
name = nav.model_name()
model = resources.model(name)
try:
    space = space_of(name, themes_shown(name))
except EmbeddingError as e:
    text.embedding_error(e)
    st.stop()

left, middle, right = st.columns([5, 4, 2], vertical_alignment="bottom")
left.text_input(
    "Type a query",
    key="es_text",
    on_change=ask_text,
    placeholder="a small cat — then press Enter",
    help="Embedded as a query by the model, placed on the map with the same projection.",
)
middle.file_uploader(
    "…or upload a photo",
    type=list(EXTENSIONS),
    key="es_image",
    on_change=ask_image,
    help="PNG, JPEG, WEBP or GIF, at most 16 megapixels."
    + ("" if embeds_images(model) else f" {name} embeds text only: it will say so."),
)
k_asked = right.slider("k neighbours", 3, 15, 5, key="es_k")
st.pills(
    "Themes on the map",
    space.all_themes,
    selection_mode="multi",
    key=THEMES,
    format_func=lambda t: f"{t} ({space.theme_counts[t]})",
    help="The lesson's items are always on the map. Each theme you add puts its items on it "
    "too; the map refits its two axes to what it shows, and Postgres searches the same items.",
)
ex1, ex2 = space.explained
st.caption(
    "On the map: the lesson's items"
    + (f" and {len(space.themes)} theme(s)" if space.themes else "")
    + f", {len(space.items)} items. Its two axes keep **{100 * (ex1 + ex2):.1f}%** of their "
    f"variance in {space.dimension} dimensions"
    + (f"; {space.hidden} more items wait in the other themes." if space.hidden else ".")
)
k = min(k_asked, len(space.items))

# Messages go in a container that is always there, so the map below keeps its place in the
# page (and its state in the browser) whether or not there is something to say.
notices = st.container()
request = st.session_state.get(QUERY) or default_request(space)
notes: list[str] = []
try:
    query, notes = resolve(request, space)
    st.session_state[GOOD] = request
except (QueryError, EmbeddingError) as e:
    if str(e):
        notices.error(str(e), icon=":material/error:")
    try:
        query, _ = resolve(st.session_state.get(GOOD) or default_request(space), space)
    except (QueryError, EmbeddingError):
        query, _ = resolve(default_request(space), space)
for note in notes:
    notices.info(text.plain(note), icon=":material/content_cut:")

answer = space.answer(db, query, k)

picture, words = st.columns([5, 2], gap="large")
with picture:
    embedding_map(space, query, k, answer.in_space, key=MAP, on_release=ask_point)
with words:
    st.markdown(
        f"**Nothing here knows what a cat is.** {name} turned each text into "
        f"{space.dimension} numbers. The cat sentences sit together because the model learned "
        "from text where they appear in similar company — not because anything here "
        "understands cats."
    )
    st.markdown(
        "**Similarity is a property of the model.** Another model gives every item other "
        "numbers: switch the model in the sidebar and every point moves, every distance "
        "changes. The neighbours you get are that model's opinion."
    )
    if embeds_images(model):
        st.markdown(
            f"**One multimodal model puts text and images in one space.** {name} embeds a "
            "photo of a cat near the words “a small cat”: squares are photos, circles texts."
        )
    else:
        st.markdown(
            "**One multimodal model puts text and images in one space.** A model such as CLIP "
            f"or voyage-multimodal-3.5 places a cat photo near the words “a small cat”. {name} "
            f"embeds text only, so the corpus's {len(space.skipped)} photos are not on this map."
        )
    st.markdown(
        f"**The map is a flattening.** Its two axes keep {100 * (ex1 + ex2):.1f}% of the "
        f"variance of the {len(space.items)} items it shows (PC 1 {100 * ex1:.1f}%, "
        f"PC 2 {100 * ex2:.1f}%), fitted on them alone. Add themes and it must flatten more: "
        "close on the map is then less often close in the space."
    )

blend = query.blend
if blend is not None:
    where = (
        f"{query.label} at ({query.x:.2f}, {query.y:.2f}) became a {space.dimension}-dimensional "
        f"query by adding up the real vectors of the {len(blend.ids)} items nearest it on the "
        f"map, each weighted by 1 / (d² + s²), d its distance on the map and s = "
        f"{blend.softening:.3f}, so that dropped on an item, that item weighs most: "
        f"{blend.describe()}"
    )
    if query.label != "your point":
        where += "; it is placed on this map by its projection"
else:
    where = f"{query.label}, embedded by {name} and placed on the map by the same projection"
st.subheader("Nearest on the map, nearest in the space")
st.text(f"Query: {where}.")  # the learner's words as typed, never Markdown
if k < k_asked:
    st.caption(f"k = {k}: the map shows {len(space.items)} items.")

shared = set(answer.shared)
map_col, true_col = st.columns(2, gap="large")
with map_col, st.container(key="es_map_list"):
    st.markdown(f"**Nearest on the map** — 2-D distance, what the eye sees (k = {k})")
    st.table(  # an Arrow table: pandas would convert a dict at every rerun (~2 ms each)
        pa.table(
            {
                "#": list(range(1, len(answer.on_map) + 1)),
                "item": [_short(n.item.text, 70) for n in answer.on_map],
                "theme": [n.item.theme for n in answer.on_map],
                "kind": [n.item.kind for n in answer.on_map],
                "map distance": [f"{n.distance:.3f}" for n in answer.on_map],
                "in both": ["✓" if n.item.id in shared else "" for n in answer.on_map],
            }
        )
    )
with true_col, st.container(key="es_true_list"):
    st.markdown(
        f"**Nearest in {space.dimension} dimensions** — cosine distance `<=>`, exact scan in "
        "PostgreSQL over the same items"
    )
    st.table(  # an Arrow table: pandas would convert a dict at every rerun (~2 ms each)
        pa.table(
            {
                "#": list(range(1, len(answer.in_space) + 1)),
                "item": [_short(n.content, 70) for n in answer.in_space],
                "theme": [n.theme for n in answer.in_space],
                "kind": [n.kind for n in answer.in_space],
                "distance": [f"{n.distance:.4f}" for n in answer.in_space],
                "similarity = 1 − distance": [f"{n.similarity:.4f}" for n in answer.in_space],
                "in both": ["✓" if n.id in shared else "" for n in answer.in_space],
            }
        )
    )

overlap = len(answer.shared)
if answer.agree:
    st.success(f"The two lists agree: all {k} items are in both.", icon=":material/check:")
else:
    st.warning(
        f"**{overlap} of {k}** items are in both lists. They disagree because the projection "
        f"itself bends distances: the map keeps {100 * (ex1 + ex2):.1f}% of the variance, so two "
        f"points that look close on it can be far apart in {space.dimension} dimensions, and "
        "the other way round. Postgres measures in the full space; trust its list.",
        icon=":material/compare_arrows:",
    )

st.subheader("The SQL that ran")
text.show_sql(answer.script)
if blend is not None:
    st.text(
        f"$1 is the unit vector along {blend.describe()} (each item's vector from "
        f"{space.table}, scaled to unit length). $2 lists the themes added to the map; the "
        "lesson column marks the lesson's items, always shown."
    )
else:
    st.text(
        f"$1 is {name}'s embedding of {query.label}. $2 lists the themes added to the map; "
        "the lesson column marks the lesson's items, always shown."
    )
# Lazy: a closed expander runs no EXPLAIN (opening it reruns the page, then it does).
plan_box = st.expander("Proof that it is exact: the plan", key="es_plan", on_change="rerun")
if plan_box.open:
    plan = space.exact_plan(db, query, k)
    plan_box.code(plan.script.text(), language="sql")
    plan_box.code("\n".join(plan.lines), language="text")
    if plan.exact:
        plan_box.caption(
            "With index scans off, Postgres reads every row and sorts by distance: a "
            "sequential scan and no index node, checked on every run. The HNSW index on this "
            "table would answer faster, and approximately (see Recall at scale)."
        )
    else:
        plan_box.error(
            "This plan reads an index, so the list above may not be the true nearest.",
            icon=":material/error:",
        )

st.subheader("Models: one space each")
st.markdown(
    f"This map shows **{len(space.items)}** of the {len(space.items) + space.hidden} items "
    f"**{name}** embeds ({space.dimension} dimensions), stored in the table `{space.table}`. "
    "Switch the model in the sidebar and the same items are redrawn in the new model's space."
)
if space.skipped:
    skipped_box = st.expander(
        f"Not on this map: {len(space.skipped)} items {name} cannot embed",
        key="es_skipped",
        on_change="rerun",
    )
    if skipped_box.open:  # photos are sent only to whoever opens it
        skipped_box.caption(f"{name} embeds {' and '.join(sorted(model.info.modalities))} only.")
        cols = skipped_box.columns(min(len(space.skipped), 5))
        for i, item in enumerate(space.skipped):
            with cols[i % len(cols)]:
                if item.image_path is not None:
                    st.image(thumbnail_url(item), width=140)
                st.caption(f"{item.kind} · {item.theme} — {item.text}")

st.markdown(
    "Vectors of two models are never compared: their numbers mean different things even when "
    "the dimensions happen to match. Postgres catches only a dimension mismatch:"
)
if st.button("Compare this table with another model's vector, in SQL"):
    others = [c.info.name for c in model_choices() if c.available and c.info.name != name]
    if others:
        other_name = others[0]
        try:
            other = resources.query_vector(other_name, "a small cat")
            whose = f"{other_name}'s vector of “a small cat” ({len(other)} dimensions)"
        except EmbeddingError as e:
            text.embedding_error(e)
            st.stop()
    else:
        other = TOY_VECTOR
        whose = (
            f"a {len(other)}-dimensional vector standing in for another model's "
            "(no second model is usable on this machine)"
        )
    attempt = cross_model_attempt(db, space.table, other)
    text.show_sql(attempt.script)
    st.caption(f"`other` is {whose}; the table holds {name}'s {space.dimension}-d vectors.")
    if attempt.error:
        st.error(
            f"PostgreSQL said: **{attempt.error}** (SQLSTATE {attempt.sqlstate})",
            icon=":material/block:",
        )
    else:
        st.warning(
            "Postgres ran it without complaint: the dimensions match, so the database cannot "
            "tell that the numbers come from two different models. The distances are "
            "meaningless — which is why the app keeps one table per model.",
            icon=":material/warning:",
        )

st.subheader("What to notice")
st.markdown(
    f"""
- Drag the star. The ringed items are the nearest on the map (2-D distance), and the line
  under the map names the item nearest, in {space.dimension} dimensions, to the query your
  point would make: both computed in your browser. Let go, and Postgres answers.
- Drop the star on “tabby cat”: the query is mostly tabby cat's own vector, so Postgres puts
  tabby cat first, at a distance near 0, and the items nearest it in meaning after it.
- Add themes. The map refits to more items and keeps less of their variance (the axes say how
  much); count the ✓ marks as the two lists part in the crowded middle.
- Why not send the point straight back through the projection? Its inverse keeps only the
  share of the variance the two axes hold ({100 * (ex1 + ex2):.0f}% here, far less with every
  theme on the map): it is then mostly the mean of the items, and by cosine its nearest are
  the items furthest out on the rim, not the one under the point. So a point borrows the
  vectors of the items around it.
- Type “a small cat”: it lands among the animals, and the first true neighbour is a cat item.
  Try a sentence about something the corpus does not mention and watch where it lands.
- Similarity is `1 − distance` for cosine: 1 is the same direction, 0 unrelated.
"""
)
