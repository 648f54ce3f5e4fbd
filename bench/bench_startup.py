"""Seconds from `streamlit run` to the first painted home page (target: under 5 s).

    .venv/bin/python bench/bench_startup.py [--runs 3]

Starts the app on a free port against the embedded PostgreSQL (or DATABASE_URL), opens the
home page in headless Chromium, and stops the clock when the title and the sidebar's
database facts are painted. Prints one line per run and the median.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

from playwright.sync_api import sync_playwright

PROJECT_DIR = Path(__file__).resolve().parent.parent
from serving import CHROMIUM, CHROMIUM_ARGS, free_port  # noqa: E402

TARGET_S = 5.0


def one_run(browser) -> float:
    port = free_port()
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    t0 = time.perf_counter()
    proc = subprocess.Popen(
        [sys.executable, "-m", "streamlit", "run", "serve.py",
         "--server.port", str(port), "--server.headless", "true"],
        cwd=PROJECT_DIR, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        page = browser.new_page()
        while True:
            try:
                page.goto(f"http://127.0.0.1:{port}/", wait_until="domcontentloaded")
                break
            except Exception:
                if time.perf_counter() - t0 > 120:
                    raise
                time.sleep(0.05)
        page.get_by_text("pgvector lab", exact=True).first.wait_for(timeout=120_000)
        page.get_by_text("PostgreSQL 1", exact=False).first.wait_for(timeout=120_000)
        elapsed = time.perf_counter() - t0
        page.close()
        return elapsed
    finally:
        proc.terminate()
        proc.wait(10)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--runs", type=int, default=3)
    args = ap.parse_args()
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        times = []
        for i in range(args.runs):
            t = one_run(browser)
            times.append(t)
            print(f"run {i + 1}: {t:.2f} s from `streamlit run` to the painted home page")
        browser.close()
    med = statistics.median(times)
    verdict = "meets" if med < TARGET_S else "MISSES"
    print(f"median {med:.2f} s over {len(times)} runs — {verdict} the {TARGET_S:.0f} s target")


if __name__ == "__main__":
    main()
