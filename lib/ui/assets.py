"""plotly.js for custom components, served by the app itself: no CDN, works offline.

Streamlit serves `static/` at `app/static/` but sends JavaScript there as text/plain (with
nosniff), so components fetch the file and run it from a Blob URL of the right type, once
per browser tab (`PLOTLY_LOADER_JS` defines `loadPlotly()`, which resolves to `window.Plotly`).
"""

from __future__ import annotations

import shutil
from pathlib import Path

STATIC_DIR = Path(__file__).resolve().parent.parent.parent / "static"
PLOTLY_URL = "app/static/plotly.min.js"


def installed_plotly_js() -> Path:
    import plotly

    return Path(plotly.__file__).parent / "package_data" / "plotly.min.js"


def ensure_plotly_static() -> Path:
    """Copy plotly.min.js from the installed plotly package into static/ unless it is there."""
    src = installed_plotly_js()
    dst = STATIC_DIR / "plotly.min.js"
    if not dst.exists() or dst.stat().st_size != src.stat().st_size:
        STATIC_DIR.mkdir(exist_ok=True)
        tmp = dst.with_suffix(".tmp")
        shutil.copyfile(src, tmp)
        tmp.replace(dst)
    return dst


# Relative to the page's URL so that it also works under server.baseUrlPath.
PLOTLY_LOADER_JS = f"""
function loadPlotly() {{
  if (window.Plotly) return Promise.resolve(window.Plotly);
  if (!window.__pgvectorLabPlotly) {{
    const url = new URL("{PLOTLY_URL}", document.baseURI.replace(/[^/]*$/, "")).href;
    window.__pgvectorLabPlotly = fetch(url)
      .then((r) => {{
        if (!r.ok) throw new Error("plotly.js not served at " + url + ": " + r.status);
        return r.text();
      }})
      .then((code) => new Promise((resolve, reject) => {{
        const blob = new Blob([code], {{ type: "text/javascript" }});
        const s = document.createElement("script");
        s.src = URL.createObjectURL(blob);
        s.onload = () => resolve(window.Plotly);
        s.onerror = () => reject(new Error("plotly.js failed to load"));
        document.head.appendChild(s);
      }}));
  }}
  return window.__pgvectorLabPlotly;
}}
"""
