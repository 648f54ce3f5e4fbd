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

.PHONY: install run test lint format chromium vectors bench clean-db clip

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	# the CPU build of torch on this machine's disk; an unpinned torch pulls a CUDA build
	$(BIN)/pip install --quiet torch==2.13.0
	$(BIN)/pip install --quiet -e '.[test]'
	touch $(STAMP)

install: $(STAMP)

run: install
	$(BIN)/streamlit run serve.py --server.port $(PORT)

# Debian's chromium drives the browser tests; Playwright never downloads a browser here.
chromium:
	@command -v chromium >/dev/null 2>&1 || { \
		SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
		$$SUDO apt-get update -qq && \
		DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq chromium >/dev/null; }

test: install chromium
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

# Stop the embedded PostgreSQL and delete its data directory (tables are rebuilt on demand).
clean-db: install
	$(BIN)/python -m lib.database stop
	rm -rf .pgdata

# Needs internet: put CLIP's weights into the Hugging Face cache so the app can offer CLIP.
clip: install
	HF_HUB_OFFLINE=0 $(BIN)/python -c "from sentence_transformers import SentenceTransformer as S; S('clip-ViT-B-32')"
