"""pgvector lab: the home page. `make run` serves it (`streamlit run serve.py`)."""

import streamlit as st

from lib.ui import connection, nav, resources

st.set_page_config(page_title="pgvector lab", page_icon="🐘", layout="wide")
nav.sidebar()

st.title("pgvector lab")
st.markdown(
    "Learn vector search in PostgreSQL by running it. Every point on a map here is a real "
    "embedding from a real model, and every ranking, plan and recall figure comes from a query "
    "that just ran against a real PostgreSQL with **pgvector** — the SQL is shown beside it, "
    "ready to paste into `psql`."
)

st.subheader("The lesson, one page per picture")
st.caption('Following the course lesson "The Foundation of Vector Search in Postgres".')
for file, label, icon, teaches in nav.existing_pages()[1:]:
    with st.container(border=True):
        st.page_link(file, label=f"**{label}**", icon=icon)
        st.markdown(teaches)

st.subheader("What this app is talking to")
db = connection.database(creates_tables=False)  # its sizes table says why, if it cannot
info = db.info()
left, right = st.columns(2)
with left:
    st.markdown(
        f"**PostgreSQL {info.server_version}** with **pgvector {info.pgvector_version}**  \n"
        f"{info.location}"
    )
    st.caption(
        "Set `DATABASE_URL` to use another server (the Docker Compose file in the repository "
        "runs one); without it the app starts its own embedded PostgreSQL."
    )
with right:
    choice = nav.model_name()
    st.markdown(f"**Embedding model:** `{choice}`")
    st.caption(
        "Models run on this machine unless you set `VOYAGE_API_KEY`, which adds the lesson's "
        "`voyage-multimodal-3.5`. Switch models in the sidebar."
    )

st.subheader("Running a workshop")
st.markdown(
    "- Everything runs on this machine: no network, no API key, no Docker needed.\n"
    "- Many attendees share one instance: each browser session keeps its own query, model "
    "and settings; `hnsw.ef_search` and friends are applied with `SET LOCAL`, so one "
    "person's knob never reaches another's query.\n"
    "- **The evening before:** `make prepare` embeds the real passages of *Recall at scale* "
    "(once; the vectors are kept on disk), builds every size (table, index and ground truth), "
    "warms them and lists what is ready. Everything it builds is kept across restarts.\n"
    "- **In the room:** `make workshop` serves the lab on port 8501 as one app process per "
    "core behind HAProxy (sticky sessions), all sharing one database: nothing is built twice."
)
st.markdown("**Recall at scale: which sizes are ready**")
overview = resources.sizes_overview()
if overview is not None:
    st.table(overview)
st.caption(
    "Read from the database now. A size that is not ready is built when someone opens it (or "
    "by `make prepare`); everyone asking for it shares one build, in a queue shared by every "
    "app process."
)
