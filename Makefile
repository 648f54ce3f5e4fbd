# pgvector lab: `make run` serves the app, `make test` runs every test.
# Both set up .venv first (Python 3.11+, pip and gcc are all a fresh machine needs).

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
PORT ?= 8501

export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1
export TOKENIZERS_PARALLELISM := false

.PHONY: install run test lint format chromium haproxy vectors bench bench-load prepare workshop clean-db clip

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	# the CPU build of torch on this machine's disk; an unpinned torch pulls a CUDA build
	$(BIN)/pip install --quiet torch==2.13.0
	$(BIN)/pip install --quiet -e '.[test]'
	touch $(STAMP)

install: $(STAMP)

run: install
	$(BIN)/streamlit run streamlit_app.py --server.port $(PORT)

# Before a workshop: build every size's table, index and ground truth, warm them, list them.
prepare: install
	$(BIN)/python -m lib.prepare

# A room: one app process per core (PROCESSES=n) behind HAProxy with sticky sessions, on PORT.
PROCESSES ?= $(shell nproc)
workshop: install haproxy
	$(BIN)/python scripts/workshop.py --processes $(PROCESSES) --port $(PORT)

haproxy:
	@command -v haproxy >/dev/null 2>&1 || [ -x /usr/sbin/haproxy ] || { \
		SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
		$$SUDO apt-get update -qq && \
		DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq haproxy >/dev/null; }

# Debian's chromium drives the browser tests; Playwright never downloads a browser here.
chromium:
	@command -v chromium >/dev/null 2>&1 || { \
		SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
		$$SUDO apt-get update -qq && \
		DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq chromium >/dev/null; }

test: install chromium haproxy
	$(BIN)/ruff check .
	$(BIN)/python -m pytest

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: install
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

# Re-embed the shipped corpus with the default model and rewrite data/vectors/.
vectors: install
	$(BIN)/python -m lib.vectors build

bench: install
	@for f in bench/bench_*.py; do echo "== $$f"; $(BIN)/python $$f || exit 1; done

# A room of 30: one session's baseline, then 30 sessions for 2 minutes (bench/bench_load.py).
bench-load: install
	$(BIN)/python bench/bench_load.py $(ARGS)

# Stop the embedded PostgreSQL and delete its data directory (tables are rebuilt on demand).
clean-db: install
	$(BIN)/python -m lib.database stop
	rm -rf .pgdata

# Needs internet: put CLIP's weights into the Hugging Face cache so the app can offer CLIP.
clip: install
	HF_HUB_OFFLINE=0 $(BIN)/python -c "from sentence_transformers import SentenceTransformer as S; S('clip-ViT-B-32')"
