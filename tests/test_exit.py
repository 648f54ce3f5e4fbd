"""A process that exits while a job worker embeds on a daemon thread exits cleanly.

A daemon thread still inside torch when the interpreter finalizes is ended by pthread_exit
on its way back to Python, and the process aborts ("terminate called without an active
exception"; it ended a CI run). lib.core.vectors stops embedding runs between batches at exit
and waits for them."""

import subprocess
import sys
import textwrap
from pathlib import Path

from lib.core.embeddings.cache import EmbeddingCache
from lib.core.embeddings.local import MINILM

PROJECT = Path(__file__).resolve().parent.parent
BATCH = 32

SCRIPT = textwrap.dedent(
    """
    import sys, threading, time
    from pathlib import Path
    from lib.core import vectors
    from lib.core.embeddings.cache import EmbeddingCache
    from lib.core.embeddings.local import MINILM
    from lib.core.embeddings.registry import load_model

    model = load_model(MINILM.name)
    model.embed(["the model loads before the worker starts"], input_type="document")
    texts = [f"passage {i}: tables, indexes and vacuum in PostgreSQL" for i in range(20_000)]
    cache = EmbeddingCache(Path(sys.argv[1]))
    started = threading.Event()

    def work():
        def progress(p):
            started.set()
        # nothing printed here: a daemon thread writing to stdout while the interpreter
        # finalizes is a fatal error of its own
        vectors.embed_missing(model, [str(i) for i in range(len(texts))],
                              lambda idx: [texts[i] for i in idx], cache=cache,
                              batch=int(sys.argv[2]), progress=progress)

    threading.Thread(target=work, daemon=True).start()
    started.wait(60)
    print("main thread done", flush=True)
    """
)


def test_exiting_while_a_daemon_thread_embeds_stops_it_between_batches_and_keeps_them(
    tmp_path,
):
    cache_path = tmp_path / "embeddings.sqlite"
    done = subprocess.run(
        [sys.executable, "-c", SCRIPT, str(cache_path), str(BATCH)],
        cwd=PROJECT,
        capture_output=True,
        text=True,
        timeout=300,
        env={"HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "PATH": "/usr/bin:/bin"},
    )
    assert "terminate called" not in done.stderr
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.splitlines() == ["main thread done"]
    kept = EmbeddingCache(cache_path).known(
        MINILM.name, MINILM.dimension, [str(i) for i in range(20_000)]
    )
    assert kept and len(kept) % BATCH == 0 and len(kept) < 20_000  # whole batches, then none
