# The lab's app, for docker-compose.yml's `workshop` profile (app replicas behind HAProxy).
# Not needed for `make run`; built by `docker compose --profile workshop up -d --build`.
FROM python:3.11-slim-bookworm

RUN apt-get update \
    && apt-get install -y --no-install-recommends make gcc \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /lab
# Exactly the runtime lock, every file checked against its hash (as `make run` installs it):
# torch's CPU build (2.13.0+cpu) comes from PyTorch's own index, the rest from PyPI.
COPY requirements/runtime.txt requirements/runtime.txt
RUN pip install --no-cache-dir --require-hashes --no-deps -r requirements/runtime.txt \
        --extra-index-url https://download.pytorch.org/whl/cpu \
    && pip check
COPY pyproject.toml README.md ./
COPY lib ./lib
RUN pip install --no-cache-dir --no-deps --no-build-isolation -e .
COPY . .

ENV HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 TOKENIZERS_PARALLELISM=false
# lib/core/memory.py: small objects in glibc's heap, so closed sessions' memory goes back to the OS
ENV PYTHONMALLOC=malloc
EXPOSE 8501
HEALTHCHECK --interval=5s --timeout=3s --retries=24 \
    CMD python -c "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8501/_stcore/health', timeout=2)"
CMD ["streamlit", "run", "serve.py", "--server.port", "8501", "--server.address", "0.0.0.0"]
