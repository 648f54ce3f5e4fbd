// The embedding map (st.components.v2): the items a map shows as a plotly.js scatter and a
// query point the learner drags. While dragging, everything runs here, every animation
// frame: the k items nearest on the map light up and get labels, and the live line says
// which item is nearest in the model's full space to the query the point would make (the
// blend of embedding_space.py's EmbeddingSpace.lift, from the items' cosine similarities `gram`).
// On release the position goes to Python (setTriggerValue("released", {x, y})), which asks
// Postgres for the true neighbours and sends back their ids (dashed rings) and the first.
//
// Streamlit calls the default export again whenever `data` changes, on the same element;
// the view lives on the root element and only redraws the plot when the map changes.
// Labels are placed here so that none overlaps another: the lesson's items, the lit ones
// and the query; every other item is named on hover. PLOTLY_LOADER_JS is prepended.

const SVG_NS = "http://www.w3.org/2000/svg";
const STAR =
  "M0,-13 L3.8,-4.2 L12.4,-4 L5.6,2 L7.6,11 L0,6.2 L-7.6,11 L-5.6,2 L-12.4,-4 L-3.8,-4.2 Z";
const LABEL_PX = 14; // font size of the labels drawn on the map
const LABEL_H = 18; // their box height
const MARKER_R = 7; // what a label keeps clear of around each marker
const DIRECTIONS = [
  [1, 0], [-1, 0], [0, -1], [0, 1], [1, -1], [-1, -1], [1, 1], [-1, 1],
]; // prettier-ignore

function svgEl(tag, attrs, parent) {
  const el = document.createElementNS(SVG_NS, tag);
  for (const [k, v] of Object.entries(attrs)) el.setAttribute(k, v);
  if (parent) parent.appendChild(el);
  return el;
}

function pct(x) {
  return (100 * x).toFixed(1) + "%";
}

function short(text, n = 48) {
  return text.length <= n ? text : text.slice(0, n - 1) + "…";
}

function overlaps(a, b, pad = 2) {
  return (
    a.x < b.x + b.w + pad && b.x < a.x + a.w + pad && a.y < b.y + b.h + pad && b.y < a.y + a.h + pad
  );
}

// The upper triangle of the cosine similarities, row by row, int16 / 32767 (embedding_map.py).
function decodeGram(b64, n) {
  const bytes = Uint8Array.from(atob(b64), (c) => c.charCodeAt(0));
  const q = new Int16Array(bytes.buffer);
  const g = new Float64Array(n * n);
  let p = 0;
  for (let i = 0; i < n; i++) {
    for (let j = i; j < n; j++) {
      const v = q[p++] / 32767;
      g[i * n + j] = v;
      g[j * n + i] = v;
    }
  }
  return g;
}

function staticUrl(path) {
  return new URL(path, document.baseURI.replace(/[^/]*$/, "")).href;
}

class MapView {
  constructor(root) {
    this.root = root;
    this.plot = root.querySelector(".es-plot");
    this.svg = root.querySelector(".es-overlay");
    this.tip = root.querySelector(".es-tip");
    this.liveList = root.querySelector(".es-live-list");
    this.liveTitle = root.querySelector(".es-live-title");
    this.nearestText = root.querySelector(".es-nearest-text");
    this.nearestHow = root.querySelector(".es-nearest-how");
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
    this.measure = document.createElement("canvas").getContext("2d");
    this.trueGroup = svgEl("g", { class: "es-true" }, this.svg);
    this.ringGroup = svgEl("g", { class: "es-rings" }, this.svg);
    this.fixedLabels = svgEl("g", { class: "es-labels es-labels-fixed" }, this.svg);
    this.movingLabels = svgEl("g", { class: "es-labels es-labels-moving" }, this.svg);
    this.handle = svgEl("g", { class: "es-handle" }, this.svg);
    svgEl("path", { d: STAR }, this.handle);
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
    this.queryLabel = data.query.label;
    this.dimLabel.textContent = String(data.dimension);
    this.sizeOverlay();
    this.liveTitle.textContent = `Nearest on the map (k = ${data.k}):`;
    if (!this.dragging) {
      this.q = { x: data.query.x, y: data.query.y };
      this.ensureVisible(this.q);
      this.placeFixedLabels();
      this.highlight(this.q.x, this.q.y);
      this.drawTrue(data.true_ids);
      this.showAnswer(data.nearest);
    }
  }

  async draw(data) {
    const P = data.points;
    this.n = P.id.length;
    this.ids = P.id;
    this.text = P.text;
    this.lesson = P.lesson;
    this.px = Float64Array.from(P.x);
    this.py = Float64Array.from(P.y);
    this.index = new Map(P.id.map((id, i) => [id, i]));
    this.thumbs = data.thumbs || {};
    this.lift = data.lift;
    this.gram = decodeGram(data.gram, this.n);
    this.lastKey = "";
    const traces = data.themes.map((theme) => {
      const idx = [];
      for (let i = 0; i < this.n; i++) if (P.theme[i] === theme) idx.push(i);
      return {
        type: "scatter",
        mode: "markers",
        name: theme,
        x: idx.map((i) => P.x[i]),
        y: idx.map((i) => P.y[i]),
        customdata: idx.map((i) => [P.text[i], theme, P.kind[i] === "image" ? "photo" : "text", P.id[i]]),
        hovertemplate: "%{customdata[0]}<br><i>%{customdata[1]} · %{customdata[2]}</i><extra></extra>",
        marker: {
          color: data.colors[theme] || "#79706e",
          size: idx.map((i) => (P.kind[i] === "image" ? 14 : P.lesson[i] ? 12 : 9)),
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
    this.font = css.getPropertyValue("--st-font").trim() || "sans-serif";
    const [x0, x1] = this.pad(this.px, 0.14);
    const [y0, y1] = this.pad(this.py, 0.1);
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
      font: { color: ink, family: this.font },
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
        font: { size: 13 },
        itemclick: false,
        itemdoubleclick: false,
      },
    };
    const config = { displayModeBar: false, responsive: true, scrollZoom: false, doubleClick: false };
    await this.Plotly.react(this.plot, traces, layout, config);
    this.signature = data.signature;
    this.root.dataset.model = data.model;
    this.root.dataset.items = String(this.n);
    if (!this.plot.__esHooked) {
      this.plot.__esHooked = true;
      this.plot.on("plotly_afterplot", () => this.reposition());
      this.plot.on("plotly_hover", (ev) => this.showTip(ev));
      this.plot.on("plotly_unhover", () => (this.tip.style.display = "none"));
    }
  }

  pad(values, frac) {
    let lo = Infinity;
    let hi = -Infinity;
    for (const v of values) {
      if (v < lo) lo = v;
      if (v > hi) hi = v;
    }
    const m = (hi - lo) * frac || 1;
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

  plotArea() {
    const fl = this.plot._fullLayout;
    if (!fl || !fl.xaxis) return null;
    return { x: fl.xaxis._offset, y: fl.yaxis._offset, w: fl.xaxis._length, h: fl.yaxis._length };
  }

  inPlotArea(sx, sy) {
    const a = this.plotArea();
    return !!a && sx >= a.x && sx <= a.x + a.w && sy >= a.y && sy <= a.y + a.h;
  }

  // The m items nearest (x, y) on the map, nearest first (ties: the earlier item), with
  // their squared distances: m = max(k, the lift's items).
  nearestOnMap(x, y, m) {
    const bestD = new Float64Array(m).fill(Infinity);
    const bestI = new Int32Array(m).fill(-1);
    for (let i = 0; i < this.n; i++) {
      const dx = this.px[i] - x;
      const dy = this.py[i] - y;
      const d = dx * dx + dy * dy;
      if (d >= bestD[m - 1]) continue;
      let j = m - 1;
      while (j > 0 && bestD[j - 1] > d) {
        bestD[j] = bestD[j - 1];
        bestI[j] = bestI[j - 1];
        j--;
      }
      bestD[j] = d;
      bestI[j] = i;
    }
    return { bestD, bestI };
  }

  // The item nearest, by cosine in the full space, to the query a drop at this spot makes:
  // weights 1 / (d² + s²) on the lift's items, cos(q, v_i) = Σ w_j G_ji / √(wᵀ G w).
  liveNearest(bestD, bestI) {
    const m = Math.min(this.lift.items, this.n);
    const s2 = this.lift.softening * this.lift.softening;
    const w = new Float64Array(m);
    let total = 0;
    for (let j = 0; j < m; j++) total += w[j] = 1 / (bestD[j] + s2);
    for (let j = 0; j < m; j++) w[j] /= total;
    let norm2 = 0;
    for (let j = 0; j < m; j++) {
      for (let l = 0; l < m; l++) norm2 += w[j] * w[l] * this.gram[bestI[j] * this.n + bestI[l]];
    }
    const norm = Math.sqrt(norm2);
    let best = -1;
    let bestCos = -Infinity;
    for (let i = 0; i < this.n; i++) {
      let c = 0;
      for (let j = 0; j < m; j++) c += w[j] * this.gram[bestI[j] * this.n + i];
      if (c > bestCos + 1e-12) {
        bestCos = c;
        best = i;
      }
    }
    return { i: best, d: 1 - bestCos / norm };
  }

  // The per-frame work while dragging: the k nearest items on the map (2-D Euclidean),
  // their rings and labels, the query marker, the live list and the live line.
  highlight(x, y) {
    const k = Math.min(this.k, this.n);
    const m = Math.max(k, Math.min(this.lift.items, this.n));
    const { bestD, bestI } = this.nearestOnMap(x, y, m);
    const rings = this.ringGroup.children;
    const ids = new Array(k);
    for (let j = 0; j < k; j++) {
      const i = bestI[j];
      ids[j] = this.ids[i];
      const [sx, sy] = this.toPx(this.px[i], this.py[i]);
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
      for (let j = 0; j < k; j++) items[j].textContent = short(this.text[bestI[j]], 40);
    }
    this.placeMovingLabels(hx, hy, Array.from(bestI.slice(0, k)));
    if (this.dragging) {
      const live = this.liveNearest(bestD, bestI);
      this.showNearest(live.i, live.d, "live");
    }
    return ids;
  }

  // The line under the map: "nearest: a puppy · d = 0.31".
  showNearest(i, d, source) {
    const text = i >= 0 ? this.text[i] : "";
    this.nearestText.replaceChildren(
      "nearest: ",
      Object.assign(document.createElement("b"), { textContent: short(text, 60) }),
      ` · d = ${d.toFixed(2)}`,
    );
    this.root.dataset.nearest = i >= 0 ? this.ids[i] : "";
    this.root.dataset.nearestDistance = d.toFixed(4);
    this.root.dataset.nearestSource = source;
    this.nearestHow.textContent =
      source === "live"
        ? `cosine distance in ${this.data.dimension} dimensions, computed in your browser from the real vectors; let go and Postgres checks`
        : `cosine distance in ${this.data.dimension} dimensions, from Postgres`;
  }

  showAnswer(nearest) {
    const i = nearest ? this.index.get(nearest.id) : undefined;
    if (i === undefined) {
      this.nearestText.textContent = "";
      this.nearestHow.textContent = "";
      this.root.dataset.nearest = "";
      return;
    }
    this.showNearest(i, nearest.distance, "postgres");
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

  // --- labels: none may overlap another, nor leave the plot area -------------------------

  textWidth(text, weight) {
    this.measure.font = `${weight} ${LABEL_PX}px ${this.font}`;
    return Math.ceil(this.measure.measureText(text).width) + 4;
  }

  // Where a w × h label for the point (sx, sy) goes: the candidate around it that overlaps
  // no placed label and stays inside the plot, covering the fewest markers, nearest first.
  // Returns null when every candidate is taken (the item is then named on hover only).
  place(sx, sy, w, h, taken, area, clear = MARKER_R) {
    let best = null;
    let bestCost = Infinity;
    for (let ring = 0; ring < 4; ring++) {
      const gap = clear + 3 + ring * 16;
      for (let d = 0; d < DIRECTIONS.length; d++) {
        const [dx, dy] = DIRECTIONS[d];
        const box = {
          x: dx > 0 ? sx + gap : dx < 0 ? sx - gap - w : sx - w / 2,
          y: dy > 0 ? sy + gap : dy < 0 ? sy - gap - h : sy - h / 2,
          w,
          h,
        };
        if (dx !== 0 && dy !== 0) {
          box.x -= dx * gap * 0.3;
          box.y -= dy * gap * 0.3;
        }
        if (box.x < area.x || box.y < area.y - 6 || box.x + w > area.x + area.w + 6 || box.y + h > area.y + area.h) continue;
        if (taken.some((t) => overlaps(box, t))) continue;
        let covered = 0;
        for (let i = 0; i < this.n; i++) {
          const [mx, my] = this.spx[i];
          if (mx > box.x - MARKER_R && mx < box.x + w + MARKER_R && my > box.y - MARKER_R && my < box.y + h + MARKER_R) covered++;
        }
        const cost = covered * 4 + ring * 3 + d * 0.05;
        if (cost < bestCost) {
          bestCost = cost;
          best = { ...box, ring };
        }
      }
      if (best && best.ring === ring && bestCost < (ring + 1) * 3) break;
    }
    return best;
  }

  drawLabel(group, text, box, sx, sy, cls) {
    if (box.ring > 0) {
      const cx = Math.min(Math.max(sx, box.x), box.x + box.w);
      const cy = Math.min(Math.max(sy, box.y), box.y + box.h);
      svgEl("line", { x1: sx, y1: sy, x2: cx, y2: cy, class: "es-leader" }, group);
    }
    const el = svgEl("text", { x: box.x + 2, y: box.y + box.h - 5, class: cls }, group);
    el.textContent = text;
    return el;
  }

  // The lesson's items: labelled once per layout, before anything that moves.
  placeFixedLabels() {
    const area = this.plotArea();
    if (!area) return;
    this.spx = Array.from({ length: this.n }, (_, i) => this.toPx(this.px[i], this.py[i]));
    this.fixedBoxes = [];
    this.fixedLabelled = new Set();
    this.fixedLabels.replaceChildren();
    for (let i = 0; i < this.n; i++) {
      if (!this.lesson[i]) continue;
      const text = short(this.text[i], 36);
      const [sx, sy] = this.spx[i];
      const box = this.place(sx, sy, this.textWidth(text, 600), LABEL_H, this.fixedBoxes, area);
      if (!box) continue;
      this.fixedBoxes.push(box);
      this.fixedLabelled.add(i);
      this.drawLabel(this.fixedLabels, text, box, sx, sy, "es-label es-label-lesson").dataset.id = this.ids[i];
    }
  }

  // The query's label and the lit items' labels, around the fixed ones, every frame.
  placeMovingLabels(hx, hy, lit) {
    const area = this.plotArea();
    if (!area || !this.fixedBoxes) return;
    const taken = this.fixedBoxes.slice();
    this.movingLabels.replaceChildren();
    const label = short(this.queryLabel || "", 40);
    const qbox = this.place(hx, hy, this.textWidth(label, 700), LABEL_H + 2, taken, area, 13);
    if (qbox) {
      taken.push(qbox);
      this.drawLabel(this.movingLabels, label, qbox, hx, hy, "es-label es-handle-label");
    }
    for (const i of lit) {
      if (this.fixedLabelled.has(i)) continue;
      const text = short(this.text[i], 36);
      const [sx, sy] = this.spx[i];
      const box = this.place(sx, sy, this.textWidth(text, 400), LABEL_H, taken, area);
      if (!box) continue;
      taken.push(box);
      this.drawLabel(this.movingLabels, text, box, sx, sy, "es-label es-label-lit").dataset.id = this.ids[i];
    }
  }

  sizeOverlay() {
    this.svg.setAttribute("width", this.plot.clientWidth);
    this.svg.setAttribute("height", this.plot.clientHeight);
  }

  reposition() {
    if (!this.q || !this.plot._fullLayout) return;
    this.sizeOverlay();
    this.placeFixedLabels();
    this.lastKey = "";
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
    this.queryLabel = "your point";
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
    if (this.raf) cancelAnimationFrame(this.raf);
    this.raf = 0;
    this.moveTo(e.clientX - this.rect.left, e.clientY - this.rect.top);
    this.dragging = false;
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
    img.src = staticUrl(thumb);
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
  // One update at a time, in the order Streamlit sent them: an update waits for plotly.js and
  // its redraw, and an older one finishing last would put back an older query (seen on a
  // loaded machine: the typed query's label replaced by the page's first one).
  view.queue = (view.queue || Promise.resolve()).catch(() => {}).then(() => view.update(data));
  view.queue.then(
    () => root.setAttribute("data-ready", "true"),
    (err) => {
      root.querySelector(".es-error").textContent = `The map could not be drawn: ${err.message || err}`;
    },
  );
}
