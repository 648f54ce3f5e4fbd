// The embedding map (st.components.v2): the corpus as a plotly.js scatter and a query point
// the learner drags. While dragging, the k items nearest on the map light up here, in the
// browser, every animation frame; on release the position goes to Python
// (setTriggerValue("released", {x, y})), which asks Postgres for the true neighbours and
// sends back their ids (drawn as dashed rings).
//
// Streamlit calls the default export again whenever `data` changes, on the same element;
// the view lives on the root element and only redraws the plot when the model changes.
// PLOTLY_LOADER_JS (lib/components/assets.py) is prepended and defines loadPlotly().

const SVG_NS = "http://www.w3.org/2000/svg";
const STAR =
  "M0,-13 L3.8,-4.2 L12.4,-4 L5.6,2 L7.6,11 L0,6.2 L-7.6,11 L-5.6,2 L-12.4,-4 L-3.8,-4.2 Z";

function svgEl(tag, attrs, parent) {
  const el = document.createElementNS(SVG_NS, tag);
  for (const [k, v] of Object.entries(attrs)) el.setAttribute(k, v);
  if (parent) parent.appendChild(el);
  return el;
}

function pct(x) {
  return (100 * x).toFixed(1) + "%";
}

class MapView {
  constructor(root) {
    this.root = root;
    this.plot = root.querySelector(".es-plot");
    this.svg = root.querySelector(".es-overlay");
    this.tip = root.querySelector(".es-tip");
    this.liveList = root.querySelector(".es-live-list");
    this.liveTitle = root.querySelector(".es-live-title");
    this.dimLabel = root.querySelector(".es-dim");
    this.signature = null;
    this.n = 0;
    this.k = 5;
    this.q = null;
    this.dragging = false;
    this.lastKey = "";
    this.raf = 0;
    this.send = () => {};
    this.ready = loadPlotly().then((P) => (this.Plotly = P));
    this.trueGroup = svgEl("g", { class: "es-true" }, this.svg);
    this.ringGroup = svgEl("g", { class: "es-rings" }, this.svg);
    this.handle = svgEl("g", { class: "es-handle" }, this.svg);
    svgEl("path", { d: STAR }, this.handle);
    this.handleLabel = svgEl("text", { class: "es-handle-label", x: 16, y: -12 }, this.handle);
    root.addEventListener("pointerdown", (e) => this.onDown(e), true);
    root.addEventListener("pointermove", (e) => this.onMove(e));
    root.addEventListener("pointerup", (e) => this.onUp(e));
    root.addEventListener("pointercancel", (e) => this.onUp(e));
  }

  async update(data) {
    await this.ready;
    if (data.signature !== this.signature) await this.draw(data);
    this.data = data;
    this.setK(data.k);
    this.root.classList.remove("es-waiting");
    this.handleLabel.textContent = data.query.label;
    this.dimLabel.textContent = String(data.dimension);
    this.sizeOverlay();
    this.liveTitle.textContent = `Nearest on the map (k = ${data.k})`;
    if (!this.dragging) {
      this.q = { x: data.query.x, y: data.query.y };
      this.ensureVisible(this.q);
      this.highlight(this.q.x, this.q.y);
      this.drawTrue(data.true_ids);
    }
  }

  async draw(data) {
    const P = data.points;
    this.n = P.id.length;
    this.ids = P.id;
    this.text = P.text;
    this.px = Float64Array.from(P.x);
    this.py = Float64Array.from(P.y);
    this.index = new Map(P.id.map((id, i) => [id, i]));
    this.thumbs = data.thumbs || {};
    const traces = data.themes.map((theme, t) => {
      const idx = [];
      for (let i = 0; i < this.n; i++) if (P.theme[i] === theme) idx.push(i);
      return {
        type: "scatter",
        mode: "markers+text",
        name: theme,
        x: idx.map((i) => P.x[i]),
        y: idx.map((i) => P.y[i]),
        text: idx.map((i) => (P.lesson[i] ? P.text[i] : "")),
        textposition: "top center",
        textfont: { size: 12 },
        customdata: idx.map((i) => [P.text[i], theme, P.kind[i] === "image" ? "photo" : "text", P.id[i]]),
        hovertemplate: "%{customdata[0]}<br><i>%{customdata[1]} · %{customdata[2]}</i><extra></extra>",
        marker: {
          color: data.colors[t % data.colors.length],
          size: idx.map((i) => (P.kind[i] === "image" ? 13 : 9)),
          symbol: idx.map((i) => (P.kind[i] === "image" ? "square" : "circle")),
          line: { width: idx.map((i) => (P.kind[i] === "image" ? 2 : 0.5)), color: "#ffffff" },
          opacity: 0.9,
        },
        cliponaxis: false,
      };
    });
    const css = getComputedStyle(this.root);
    const ink = css.getPropertyValue("--st-text-color").trim() || "#31333f";
    const grid = css.getPropertyValue("--st-border-color-light").trim() || "#e6e9ef";
    const [x0, x1] = this.pad(this.px);
    const [y0, y1] = this.pad(this.py);
    const axis = (title, range) => ({
      title: { text: title, font: { size: 13 } },
      range,
      zeroline: false,
      gridcolor: grid,
      fixedrange: true,
      tickformat: ".1f",
    });
    const layout = {
      margin: { l: 56, r: 8, t: 48, b: 48 },
      paper_bgcolor: "rgba(0,0,0,0)",
      plot_bgcolor: "rgba(0,0,0,0)",
      font: { color: ink, family: css.getPropertyValue("--st-font").trim() || "sans-serif" },
      xaxis: axis(`PC 1 · ${pct(data.explained[0])} of the variance`, [x0, x1]),
      yaxis: axis(`PC 2 · ${pct(data.explained[1])} of the variance`, [y0, y1]),
      dragmode: false,
      hovermode: "closest",
      showlegend: true,
      legend: {
        orientation: "h",
        x: 0,
        y: 1.01,
        yanchor: "bottom",
        font: { size: 12 },
        itemclick: false,
        itemdoubleclick: false,
      },
    };
    const config = { displayModeBar: false, responsive: true, scrollZoom: false, doubleClick: false };
    await this.Plotly.react(this.plot, traces, layout, config);
    this.signature = data.signature;
    if (!this.plot.__esHooked) {
      this.plot.__esHooked = true;
      this.plot.on("plotly_afterplot", () => this.reposition());
      this.plot.on("plotly_hover", (ev) => this.showTip(ev));
      this.plot.on("plotly_unhover", () => (this.tip.style.display = "none"));
    }
  }

  pad(values) {
    let lo = Infinity;
    let hi = -Infinity;
    for (const v of values) {
      if (v < lo) lo = v;
      if (v > hi) hi = v;
    }
    const m = (hi - lo) * 0.08 || 1;
    return [lo - m, hi + m];
  }

  ensureVisible(q) {
    const fl = this.plot._fullLayout;
    if (!fl) return;
    const [x0, x1] = fl.xaxis.range;
    const [y0, y1] = fl.yaxis.range;
    if (q.x >= x0 && q.x <= x1 && q.y >= y0 && q.y <= y1) return;
    const mx = (x1 - x0) * 0.08;
    const my = (y1 - y0) * 0.08;
    this.Plotly.relayout(this.plot, {
      "xaxis.range": [Math.min(x0, q.x - mx), Math.max(x1, q.x + mx)],
      "yaxis.range": [Math.min(y0, q.y - my), Math.max(y1, q.y + my)],
    });
  }

  setK(k) {
    if (k === this.k && this.ringGroup.childElementCount === k) return;
    this.k = k;
    this.ringGroup.replaceChildren();
    this.liveList.replaceChildren();
    for (let j = 0; j < k; j++) {
      svgEl("circle", { r: 10 }, this.ringGroup);
      this.liveList.appendChild(document.createElement("li"));
    }
    this.bestD = new Float64Array(k);
    this.bestI = new Int32Array(k);
    this.lastKey = "";
  }

  // Data coordinates <-> pixels inside the plot element (plotly's axis scales).
  toPx(x, y) {
    const fl = this.plot._fullLayout;
    return [fl.xaxis._offset + fl.xaxis.l2p(x), fl.yaxis._offset + fl.yaxis.l2p(y)];
  }

  fromPx(sx, sy) {
    const fl = this.plot._fullLayout;
    const xa = fl.xaxis;
    const ya = fl.yaxis;
    const cx = Math.min(Math.max(sx, xa._offset), xa._offset + xa._length);
    const cy = Math.min(Math.max(sy, ya._offset), ya._offset + ya._length);
    return [xa.p2l(cx - xa._offset), ya.p2l(cy - ya._offset)];
  }

  inPlotArea(sx, sy) {
    const fl = this.plot._fullLayout;
    if (!fl || !fl.xaxis) return false;
    const xa = fl.xaxis;
    const ya = fl.yaxis;
    return (
      sx >= xa._offset && sx <= xa._offset + xa._length &&
      sy >= ya._offset && sy <= ya._offset + ya._length
    );
  }

  // The per-frame work while dragging: the k nearest items on the map (2-D Euclidean),
  // their rings, the query marker and the live list. Returns the ids, nearest first.
  highlight(x, y) {
    const k = Math.min(this.k, this.n);
    const bestD = this.bestD;
    const bestI = this.bestI;
    bestD.fill(Infinity);
    const px = this.px;
    const py = this.py;
    for (let i = 0; i < this.n; i++) {
      const dx = px[i] - x;
      const dy = py[i] - y;
      const d = dx * dx + dy * dy;
      if (d >= bestD[k - 1]) continue;
      let j = k - 1;
      while (j > 0 && bestD[j - 1] > d) {
        bestD[j] = bestD[j - 1];
        bestI[j] = bestI[j - 1];
        j--;
      }
      bestD[j] = d;
      bestI[j] = i;
    }
    const rings = this.ringGroup.children;
    const ids = new Array(k);
    for (let j = 0; j < k; j++) {
      const i = bestI[j];
      ids[j] = this.ids[i];
      const [sx, sy] = this.toPx(px[i], py[i]);
      rings[j].setAttribute("cx", sx);
      rings[j].setAttribute("cy", sy);
    }
    const [hx, hy] = this.toPx(x, y);
    this.handle.setAttribute("transform", `translate(${hx},${hy})`);
    const key = ids.join("\n");
    if (key !== this.lastKey) {
      this.lastKey = key;
      this.root.dataset.highlighted = ids.join(",");
      const items = this.liveList.children;
      for (let j = 0; j < k; j++) items[j].textContent = this.text[bestI[j]];
    }
    return ids;
  }

  drawTrue(ids) {
    this.trueIds = ids || [];
    this.trueGroup.replaceChildren();
    for (const id of this.trueIds) {
      const i = this.index.get(id);
      if (i === undefined) continue;
      const [sx, sy] = this.toPx(this.px[i], this.py[i]);
      svgEl("circle", { r: 15, cx: sx, cy: sy }, this.trueGroup);
    }
  }

  sizeOverlay() {
    this.svg.setAttribute("width", this.plot.clientWidth);
    this.svg.setAttribute("height", this.plot.clientHeight);
  }

  reposition() {
    if (!this.q || !this.plot._fullLayout) return;
    this.sizeOverlay();
    this.highlight(this.q.x, this.q.y);
    if (!this.dragging) this.drawTrue(this.trueIds);
  }

  onDown(e) {
    if (e.button !== 0 || !this.plot._fullLayout || !this.q) return;
    const rect = this.plot.getBoundingClientRect();
    const sx = e.clientX - rect.left;
    const sy = e.clientY - rect.top;
    if (!this.inPlotArea(sx, sy)) return;
    e.preventDefault();
    e.stopPropagation();
    this.rect = rect;
    this.dragging = true;
    this.root.setPointerCapture(e.pointerId);
    this.root.classList.add("es-dragging");
    this.tip.style.display = "none";
    this.trueGroup.replaceChildren();
    this.moveTo(sx, sy);
  }

  onMove(e) {
    if (!this.dragging) return;
    this.pending = [e.clientX - this.rect.left, e.clientY - this.rect.top];
    if (!this.raf) {
      this.raf = requestAnimationFrame(() => {
        this.raf = 0;
        if (this.dragging) this.moveTo(...this.pending);
      });
    }
  }

  onUp(e) {
    if (!this.dragging) return;
    this.dragging = false;
    if (this.raf) cancelAnimationFrame(this.raf);
    this.raf = 0;
    this.moveTo(e.clientX - this.rect.left, e.clientY - this.rect.top);
    this.root.classList.remove("es-dragging");
    this.root.classList.add("es-waiting");
    this.send("released", { x: this.q.x, y: this.q.y });
  }

  moveTo(sx, sy) {
    const [x, y] = this.fromPx(sx, sy);
    this.q = { x, y };
    this.highlight(x, y);
  }

  showTip(ev) {
    if (this.dragging) return;
    const p = ev.points && ev.points[0];
    const thumb = p && this.thumbs[p.customdata[3]];
    if (!thumb) {
      this.tip.style.display = "none";
      return;
    }
    const img = this.tip.querySelector("img") || this.tip.appendChild(document.createElement("img"));
    img.src = thumb;
    img.alt = p.customdata[0];
    const [sx, sy] = this.toPx(p.x, p.y);
    this.tip.style.left = `${sx + 14}px`;
    this.tip.style.top = `${Math.max(0, sy - 140)}px`;
    this.tip.style.display = "block";
  }

  // For tests and the bench: where an item or the query is, in page (client) pixels.
  clientPoint(id) {
    const rect = this.plot.getBoundingClientRect();
    const i = this.index.get(id);
    const [sx, sy] = i === undefined ? this.toPx(this.q.x, this.q.y) : this.toPx(this.px[i], this.py[i]);
    return { x: rect.left + sx, y: rect.top + sy };
  }
}

export default function (component) {
  const { data, parentElement, setTriggerValue } = component;
  const root = parentElement.querySelector(".es-root");
  if (!root || !data) return;
  if (!root.__es) root.__es = new MapView(root);
  const view = root.__es;
  view.send = setTriggerValue;
  view.update(data).then(
    () => root.setAttribute("data-ready", "true"),
    (err) => {
      root.querySelector(".es-error").textContent = `The map could not be drawn: ${err.message || err}`;
    },
  );
}
