"""Embedding space page: how fast each interaction answers, medians over 50 tries.

    .venv/bin/python bench/bench_embedding_space.py [--tries 50] [--no-browser]

1. drag release -> true neighbours, server time: the lift (a blend of item vectors), the
   exact scan in Postgres, the map's neighbours and the plan the page shows (< 150 ms);
2. typed text -> neighbours, the local model's embedding included (target < 200 ms);
3. in Chromium, the highlight the browser runs on every frame of a drag: nearest on the map,
   rings, labels, marker, live list and live line, plus the style and layout it forces
   (target < 16 ms);
4. in Chromium, mouse up -> the new true neighbours drawn by the page (whole round trip:
   trigger, script rerun, Postgres, delta back) — for information, no target.

Runs against the embedded PostgreSQL (or DATABASE_URL) and the default local model.
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import subprocess
import sys
import time
from pathlib import Path

PROJECT_DIR = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(PROJECT_DIR))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

from serving import CHROMIUM, CHROMIUM_ARGS, free_port, wait_healthy  # noqa: E402

from lib.core.corpus import load_items  # noqa: E402
from lib.core.database import open_database  # noqa: E402
from lib.core.embeddings.local import MINILM  # noqa: E402
from lib.core.embeddings.registry import load_model  # noqa: E402
from lib.core.queries import check_text, text_vector  # noqa: E402
from lib.core.store import ensure_corpus_table  # noqa: E402
from lib.core.vectors import embeddable, item_vectors  # noqa: E402
from lib.lessons.space.embedding_space import EmbeddingSpace  # noqa: E402

K = 5
WORDS = "cat dog car rain snow guitar pizza rocket database camera river castle tea".split()


def line(name: str, ms: list[float], target: float | None) -> None:
    med = statistics.median(ms)
    p90 = statistics.quantiles(ms, n=10)[-1]
    verdict = "" if target is None else ("  OK" if med < target else "  OVER TARGET")
    goal = "" if target is None else f"  (target < {target:.0f} ms)"
    print(f"{name:<46} median {med:7.2f} ms   p90 {p90:7.2f} ms{goal}{verdict}")


def server_side(tries: int) -> None:
    db = open_database()
    model = load_model(MINILM.name)
    items = embeddable(model, load_items())
    vectors = item_vectors(model, items)
    table = ensure_corpus_table(db, MINILM.name, items, vectors)
    space = EmbeddingSpace(MINILM.name, table, items, vectors, normalized=True)
    rng = random.Random(1)
    lo, hi = space.xy.min(axis=0), space.xy.max(axis=0)
    for _ in range(5):  # warm the pool and the table's pages
        space.answer(db, space.point_query(0.0, 0.0), K)

    release = []
    for _ in range(tries):
        x, y = rng.uniform(lo[0], hi[0]), rng.uniform(lo[1], hi[1])
        t0 = time.perf_counter()
        query = space.point_query(x, y)
        space.answer(db, query, K)
        space.exact_plan(db, query, K)
        release.append((time.perf_counter() - t0) * 1000)
    line("drag release -> true neighbours (server)", release, 150)

    text_vector(model, "warm up")
    typed, embed_only = [], []
    for i in range(tries):
        text = f"a {rng.choice(WORDS)} and a {rng.choice(WORDS)} number {i}"
        t0 = time.perf_counter()
        checked = check_text(model, text)
        vector = text_vector(model, checked.text)
        t1 = time.perf_counter()
        space.answer(db, space.vector_query(vector, "text", text), K)
        typed.append((time.perf_counter() - t0) * 1000)
        embed_only.append((t1 - t0) * 1000)
    line("typed text -> neighbours (embedding included)", typed, 200)
    line("  of which the embedding", embed_only, None)
    db.close()


HIGHLIGHT_JS = """(tries) => {
  const view = document.querySelector('.es-root').__es;
  const xs = Array.from(view.px), ys = Array.from(view.py);
  const [x0, x1] = [Math.min(...xs), Math.max(...xs)];
  const [y0, y1] = [Math.min(...ys), Math.max(...ys)];
  const pure = [], framed = [];
  for (let i = 0; i < tries; i++) {
    const x = x0 + Math.random() * (x1 - x0), y = y0 + Math.random() * (y1 - y0);
    const t0 = performance.now();
    view.highlight(x, y);
    const t1 = performance.now();
    void document.body.offsetHeight;  // the style and layout the change forces
    const t2 = performance.now();
    pure.push(t1 - t0);
    framed.push(t2 - t0);
  }
  return {pure, framed};
}"""

ROUND_TRIP_JS = """() => {
  const root = document.querySelector('.es-root');
  window.__bench = {};
  root.addEventListener('pointerup', () => (window.__bench.up = performance.now()),
                        {capture: true, once: true});
  window.__bench.done = new Promise((resolve) => {
    const mo = new MutationObserver(() => {
      if (window.__bench.up && !root.classList.contains('es-waiting')) {
        mo.disconnect();
        resolve(performance.now() - window.__bench.up);
      }
    });
    mo.observe(root, {attributes: true, attributeFilter: ['class']});
  });
}"""


def in_browser(tries: int) -> None:
    from playwright.sync_api import sync_playwright

    port = free_port()
    url = f"http://127.0.0.1:{port}"
    proc = subprocess.Popen(
        [sys.executable, "-m", "streamlit", "run", "serve.py",
         "--server.port", str(port), "--server.headless", "true"],
        cwd=PROJECT_DIR, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        wait_healthy(url, proc)
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            page.goto(f"{url}/Embedding_space")
            page.wait_for_selector('.es-root[data-ready="true"]', timeout=180_000)
            page.locator(".es-plot").scroll_into_view_if_needed()
            page.evaluate(HIGHLIGHT_JS, 20)  # warm-up: JIT
            got = page.evaluate(HIGHLIGHT_JS, tries)
            line("highlight per frame (JS only)", got["pure"], None)
            line("highlight per frame (with style + layout)", got["framed"], 16)

            box = page.locator(".es-plot").bounding_box()
            rng = random.Random(2)
            round_trips = []
            for _ in range(tries):
                q = page.evaluate("() => document.querySelector('.es-root').__es.clientPoint(null)")
                page.evaluate(ROUND_TRIP_JS)
                tx = box["x"] + box["width"] * rng.uniform(0.2, 0.9)
                ty = box["y"] + box["height"] * rng.uniform(0.2, 0.85)
                page.mouse.move(q["x"], q["y"])
                page.mouse.down()
                page.mouse.move(tx, ty, steps=4)
                page.mouse.up()
                round_trips.append(page.evaluate("() => window.__bench.done"))
                page.wait_for_selector('[data-testid="stApp"][data-test-script-state="notRunning"]')
            line("mouse up -> true neighbours drawn (browser)", round_trips, None)
            browser.close()
    finally:
        proc.terminate()
        proc.wait(10)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--tries", type=int, default=50)
    ap.add_argument("--no-browser", action="store_true")
    args = ap.parse_args()
    load = os.getloadavg()[0]
    print(f"{args.tries} tries each, {os.cpu_count()} cores, load average {load:.2f}")
    server_side(args.tries)
    if not args.no_browser:
        in_browser(args.tries)


if __name__ == "__main__":
    main()
