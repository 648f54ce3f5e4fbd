// Vector arrows (st.components.v2): documents and a query as 2D arrows from the origin,
// drawn with plotly.js; every arrow tip can be dragged. While dragging, the arrow follows
// the pointer here in the browser; on release the new position goes to Python
// (setTriggerValue("moved", {name, x, y})), which ranks again and sends the picture back.
//
// Streamlit calls the default export again whenever `data` changes, on the same element;
// the view lives on the root element. Python computes every overlay (segments, labels);
// this file only draws and drags. PLOTLY_LOADER_JS (lib/ui/assets.py) is prepended.

const HIT_RADIUS_PX = 22;

class ArrowsView {
  constructor(root) {
    this.root = root;
    this.plot = root.querySelector(".va-plot");
    this.drag = null;
    this.send = () => {};
    this.ready = loadPlotly().then((P) => (this.Plotly = P));
    root.addEventListener("pointerdown", (e) => this.onDown(e), true);
    root.addEventListener("mousedown", (e) => this.drag && e.stopPropagation(), true);
    this.listeners = [
      ["pointermove", (e) => this.onMove(e)],
      ["pointerup", (e) => this.onUp(e)],
      ["pointercancel", (e) => this.onUp(e)],
    ];
    for (const [type, fn] of this.listeners) window.addEventListener(type, fn);
  }

  destroy() {
    for (const [type, fn] of this.listeners) window.removeEventListener(type, fn);
    if (this.Plotly) this.Plotly.purge(this.plot);
  }

  async update(data, send) {
    this.send = send;
    await this.ready;
    this.data = data;
    this.points = data.points.map((p) => ({ ...p }));
    if (!this.drag) this.render(true);
    this.root.dataset.ready = "true";
  }

  figure(withOverlays) {
    const d = this.data;
    const points = this.points;
    const traces = [];
    const shapes = [
      {
        type: "circle", xref: "x", yref: "y", x0: -1, y0: -1, x1: 1, y1: 1,
        line: { color: "#9aa0a6", width: 1.5, dash: "dot" }, layer: "below",
      },
    ];
    const annotations = [
      {
        x: 0.72, y: -0.72, xref: "x", yref: "y", text: "length 1",
        showarrow: false, font: { size: 12, color: "#80868b" },
      },
    ];
    if (withOverlays) {
      for (const s of d.segments) {
        shapes.push({
          type: "line", xref: "x", yref: "y", x0: s.x0, y0: s.y0, x1: s.x1, y1: s.y1,
          line: { color: s.color, width: s.width || 2, dash: s.dash || "dash" },
          layer: "below",
        });
      }
      for (const t of d.labels) {
        const pointer = t.ax !== undefined;
        annotations.push({
          x: t.x, y: t.y, xref: "x", yref: "y", text: t.text, showarrow: pointer,
          ax: t.ax, ay: t.ay, arrowhead: 0, arrowwidth: 1, arrowcolor: t.color,
          font: { size: 14, color: t.color }, bgcolor: "rgba(255,255,255,0.85)",
        });
      }
    }
    for (const p of points) {
      if (Math.hypot(p.x, p.y) < 1e-9) continue; // a zero vector has no arrow, only a dot
      // Arrow from the origin to the tip; the text is empty so only the arrow shows.
      annotations.push({
        x: p.x, y: p.y, ax: 0, ay: 0, xref: "x", yref: "y", axref: "x", ayref: "y",
        text: "", showarrow: true, arrowhead: 2, arrowsize: 1.1,
        arrowwidth: p.kind === "query" ? 4 : 3, arrowcolor: p.color, standoff: 0,
      });
    }
    traces.push({
      type: "scatter",
      mode: "markers+text",
      x: points.map((p) => p.x),
      y: points.map((p) => p.y),
      text: points.map((p) => p.label),
      textposition: points.map((p) => p.textposition || "top right"),
      textfont: { size: 15, color: points.map((p) => p.color) },
      hovertext: points.map((p) => p.hover),
      hoverinfo: "text",
      marker: {
        size: points.map((p) => (p.kind === "query" ? 18 : 15)),
        symbol: points.map((p) => (p.kind === "query" ? "diamond" : "circle")),
        color: points.map((p) => p.color),
        line: {
          color: points.map((p) => (p.top ? "#f9ab00" : "#ffffff")),
          width: points.map((p) => (p.top ? 4 : 1.5)),
        },
      },
      cliponaxis: false,
    });
    const axis = (title, range) => ({
      range, constrain: "domain", fixedrange: true, zeroline: true, zerolinecolor: "#5f6368",
      zerolinewidth: 1.5, gridcolor: "#eceff1", dtick: 1, title: { text: title },
      tickfont: { size: 12 },
    });
    // One unit is as long across as up; the height follows the width the page gives us.
    const margin = { l: 48, r: 16, t: 8, b: 44 };
    const width = this.plot.clientWidth || 600;
    const [x0, x1] = d.x_range;
    const [y0, y1] = d.y_range;
    const height = Math.round(((width - margin.l - margin.r) * (y1 - y0)) / (x1 - x0));
    const layout = {
      height: Math.min(d.max_height, height + margin.t + margin.b),
      margin,
      xaxis: axis("dimension 1", d.x_range),
      yaxis: { ...axis("dimension 2", d.y_range), scaleanchor: "x", scaleratio: 1 },
      showlegend: false,
      dragmode: false,
      hovermode: "closest",
      shapes,
      annotations,
      font: { family: "var(--st-font, sans-serif)" },
      paper_bgcolor: "rgba(0,0,0,0)",
      plot_bgcolor: "#ffffff",
    };
    return { traces, layout };
  }

  render(withOverlays) {
    const { traces, layout } = this.figure(withOverlays);
    this.Plotly.react(this.plot, traces, layout, {
      displayModeBar: false, responsive: true, doubleClick: false, scrollZoom: false,
    });
  }

  toData(e) {
    const fl = this.plot._fullLayout;
    if (!fl || !fl.xaxis) return null;
    const xa = fl.xaxis, ya = fl.yaxis;
    const box = this.plot.getBoundingClientRect();
    const px = e.clientX - box.left - xa._offset;
    const py = e.clientY - box.top - ya._offset;
    return { x: xa.p2l(px), y: ya.p2l(py), px, py, xa, ya };
  }

  nearest(pos) {
    let best = null;
    let bestD = HIT_RADIUS_PX;
    this.points.forEach((p, i) => {
      const dx = pos.xa.l2p(p.x) - pos.px;
      const dy = pos.ya.l2p(p.y) - pos.py;
      const dist = Math.hypot(dx, dy);
      if (dist <= bestD) {
        best = i;
        bestD = dist;
      }
    });
    return best;
  }

  onDown(e) {
    if (!this.data || e.button > 0) return;
    const pos = this.toData(e);
    if (!pos) return;
    const i = this.nearest(pos);
    if (i === null) return;
    e.preventDefault();
    e.stopPropagation();
    this.drag = { i, moved: false };
    this.root.classList.add("va-dragging");
  }

  onMove(e) {
    if (!this.drag) {
      if (!this.data) return;
      const pos = this.toData(e);
      const near = pos && this.nearest(pos) !== null;
      this.root.classList.toggle("va-near", Boolean(near));
      return;
    }
    e.preventDefault();
    const pos = this.toData(e);
    if (!pos) return;
    const [x0, x1] = this.data.x_range;
    const [y0, y1] = this.data.y_range;
    const p = this.points[this.drag.i];
    p.x = Math.max(x0, Math.min(x1, pos.x));
    p.y = Math.max(y0, Math.min(y1, pos.y));
    const who = p.kind === "query" ? "query" : p.name;
    p.label = `<b>${who}</b> ‖${Math.hypot(p.x, p.y).toFixed(2)}‖`;
    this.drag.moved = true;
    if (!this.frame) {
      this.frame = requestAnimationFrame(() => {
        this.frame = 0;
        if (this.drag) this.render(false);
      });
    }
  }

  onUp(e) {
    if (!this.drag) return;
    const { i, moved } = this.drag;
    this.drag = null;
    this.root.classList.remove("va-dragging");
    if (!moved) return;
    const p = this.points[i];
    const round = (v) => Math.round(v * 100) / 100;
    this.send("moved", { name: p.name, x: round(p.x), y: round(p.y) });
  }
}

export default function (component) {
  const { data, parentElement, setTriggerValue } = component;
  let root = parentElement.querySelector(".va-root");
  if (!root) {
    root = document.createElement("div");
    root.className = "va-root";
    root.innerHTML = '<div class="va-plot"></div>';
    parentElement.appendChild(root);
  }
  if (!root.__view) root.__view = new ArrowsView(root);
  const view = root.__view;
  view.update(data, setTriggerValue).catch((err) => {
    root.textContent = "The picture could not be drawn: " + err.message;
  });
  return () => {
    view.destroy();
    root.__view = null;
  };
}
