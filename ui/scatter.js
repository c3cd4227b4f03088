// Linked scatter of several 2-D maps of the same points (the Embeddings page).
// Canvas 2D, one panel per layer: hovering a point rings it in every panel and shows its
// image; a click sends {index, layer} to Python as the "selected" state; wheel zooms,
// drag pans, double-click resets; clicking a legend entry hides or shows a class.
// data: see vizlib.plots.embedding.scatter_payload.

const PANEL_HEIGHT = 380; // the tallest a panel gets (a wide screen)
const PANEL_MIN = 160; // the shortest: a narrow panel is square down to this
const RADIUS = 2.2;
const HIT_PX = 7;
const TIP_SIDE = 112;
const BLOCK = 512; // points per interleaved drawing block

export default function (component) {
  const { data, parentElement, setStateValue } = component;
  const old = parentElement.querySelector(".emb-root");
  if (old) old.remove();
  const root = document.createElement("div");
  root.className = "emb-root";
  parentElement.appendChild(root);
  if (!data || !data.layers || data.layers.length === 0) return () => root.remove();

  const n = data.index.length;
  const colour = {};
  for (const c of data.classes) colour[c.id] = c.colour;
  const hidden = new Set();
  let hover = -1; // drawn-point number under the cursor, or -1

  // ---------------------------------------------------------------- legend and help
  const legend = document.createElement("div");
  legend.className = "emb-legend";
  if (data.has_labels) {
    const title = document.createElement("span");
    title.className = "emb-legend-title";
    title.textContent = "label (click to hide/show):";
    legend.appendChild(title);
    for (const c of data.classes) {
      const item = document.createElement("button");
      item.className = "emb-legend-item";
      item.innerHTML = `<span class="emb-swatch" style="background:${c.colour}"></span>`;
      item.appendChild(document.createTextNode(c.name));
      item.onclick = () => {
        if (hidden.has(c.id)) hidden.delete(c.id);
        else hidden.add(c.id);
        item.classList.toggle("emb-off", hidden.has(c.id));
        drawAll();
      };
      legend.appendChild(item);
    }
  }
  root.appendChild(legend);

  const row = document.createElement("div");
  row.className = "emb-panels";
  root.appendChild(row);

  const help = document.createElement("div");
  help.className = "emb-help";
  help.textContent =
    "Hover a point to see its image (ringed in every layer); click it to show it below with " +
    "its neighbours. Wheel: zoom; drag: pan; double-click: reset the view.";
  root.appendChild(help);

  // ---------------------------------------------------------------- tooltip
  const tip = document.createElement("div");
  tip.className = "emb-tip";
  const tipCanvas = document.createElement("canvas");
  tipCanvas.width = TIP_SIDE;
  tipCanvas.height = TIP_SIDE;
  const tipText = document.createElement("div");
  tip.appendChild(tipCanvas);
  tip.appendChild(tipText);
  root.appendChild(tip);
  let sprite = null;
  if (data.sprite) {
    sprite = new Image();
    sprite.src = data.sprite;
  }
  const className = {};
  for (const c of data.classes) className[c.id] = c.name;

  // ---------------------------------------------------------------- panels
  const panels = data.layers.map((layer) => {
    const box = document.createElement("div");
    box.className = "emb-panel";
    const title = document.createElement("div");
    title.className = "emb-title";
    title.textContent = layer.name;
    const stack = document.createElement("div");
    stack.className = "emb-stack";
    const base = document.createElement("canvas");
    const over = document.createElement("canvas");
    over.className = "emb-over";
    over.setAttribute("data-layer", layer.name);
    stack.appendChild(base);
    stack.appendChild(over);
    const axis = document.createElement("div");
    axis.className = "emb-axis";
    axis.textContent = `${data.axis} 1 → · ${data.axis} 2 ↑`;
    box.appendChild(title);
    box.appendChild(stack);
    box.appendChild(axis);
    row.appendChild(box);
    const xs = layer.x;
    const ys = layer.y;
    let x0 = Infinity, x1 = -Infinity, y0 = Infinity, y1 = -Infinity;
    for (let i = 0; i < n; i++) {
      if (xs[i] < x0) x0 = xs[i];
      if (xs[i] > x1) x1 = xs[i];
      if (ys[i] < y0) y0 = ys[i];
      if (ys[i] > y1) y1 = ys[i];
    }
    return { layer, base, over, stack, bounds: [x0, x1, y0, y1], view: null, w: 0, h: 0, px: null, py: null, grid: null };
  });

  function fit(p) {
    const [x0, x1, y0, y1] = p.bounds;
    const spanX = Math.max(x1 - x0, 1e-9);
    const spanY = Math.max(y1 - y0, 1e-9);
    const scale = 0.92 * Math.min(p.w / spanX, p.h / spanY); // equal aspect: distances are the map's
    p.view = { cx: (x0 + x1) / 2, cy: (y0 + y1) / 2, scale };
  }

  function size(p) {
    const dpr = window.devicePixelRatio || 1;
    const w = Math.max(50, Math.floor(p.stack.clientWidth));
    // square where the panel is narrow: at 1024 px three maps were 180 px wide and 380 high,
    // the equal-aspect map a band across the middle of white above and below
    const h = Math.min(PANEL_HEIGHT, Math.max(PANEL_MIN, w));
    p.stack.style.height = `${h}px`;
    const resized = w !== p.w || h !== p.h;
    p.w = w;
    p.h = h;
    for (const c of [p.base, p.over]) {
      c.width = Math.round(w * dpr);
      c.height = Math.round(h * dpr);
      c.style.width = `${w}px`;
      c.style.height = `${h}px`;
      c.getContext("2d").setTransform(dpr, 0, 0, dpr, 0, 0);
    }
    if (resized || !p.view) fit(p);
  }

  function draw(p) {
    const ctx = p.base.getContext("2d");
    ctx.clearRect(0, 0, p.w, p.h);
    const { cx, cy, scale } = p.view;
    const xs = p.layer.x;
    const ys = p.layer.y;
    p.px = new Float32Array(n);
    p.py = new Float32Array(n);
    const cell = HIT_PX * 2;
    p.grid = new Map();
    const byClass = new Map();
    for (let i = 0; i < n; i++) {
      const sx = p.w / 2 + (xs[i] - cx) * scale;
      const sy = p.h / 2 - (ys[i] - cy) * scale;
      p.px[i] = sx;
      p.py[i] = sy;
      const lab = data.label[i];
      if (hidden.has(lab) || sx < -5 || sy < -5 || sx > p.w + 5 || sy > p.h + 5) continue;
      if (!byClass.has(lab)) byClass.set(lab, []);
      byClass.get(lab).push(i);
      const key = Math.floor(sx / cell) * 100003 + Math.floor(sy / cell);
      if (!p.grid.has(key)) p.grid.set(key, []);
      p.grid.get(key).push(i);
    }
    // Classes are drawn in interleaved blocks of points, not one class after another, so that
    // where classes overlap no class is always on top (the points' order is the data's own).
    ctx.globalAlpha = 0.8;
    const next = new Map(); // per class: its first point not drawn yet (ids ascend)
    for (const lab of byClass.keys()) next.set(lab, 0);
    for (let end = BLOCK; end < n + BLOCK; end += BLOCK) {
      for (const [lab, ids] of byClass) {
        let k = next.get(lab);
        if (k >= ids.length || ids[k] >= end) continue;
        ctx.fillStyle = colour[lab] || "#888";
        ctx.beginPath();
        for (; k < ids.length && ids[k] < end; k++) {
          const i = ids[k];
          ctx.moveTo(p.px[i] + RADIUS, p.py[i]);
          ctx.arc(p.px[i], p.py[i], RADIUS, 0, 2 * Math.PI);
        }
        ctx.fill();
        next.set(lab, k);
      }
    }
    ctx.globalAlpha = 1;
  }

  function drawOverlays() {
    for (const p of panels) {
      const ctx = p.over.getContext("2d");
      ctx.clearRect(0, 0, p.w, p.h);
      if (hover < 0 || !p.px) continue;
      const x = p.px[hover];
      const y = p.py[hover];
      ctx.lineWidth = 2.5;
      ctx.strokeStyle = "#ffffff";
      ctx.beginPath();
      ctx.arc(x, y, 7, 0, 2 * Math.PI);
      ctx.stroke();
      ctx.lineWidth = 1.5;
      ctx.strokeStyle = "#111111";
      ctx.beginPath();
      ctx.arc(x, y, 7, 0, 2 * Math.PI);
      ctx.stroke();
    }
  }

  function drawAll() {
    for (const p of panels) {
      if (!p.view) size(p);
      draw(p);
    }
    drawOverlays();
  }

  function nearest(p, sx, sy) {
    const cell = HIT_PX * 2;
    const gx = Math.floor(sx / cell);
    const gy = Math.floor(sy / cell);
    let best = -1;
    let bestD = HIT_PX * HIT_PX;
    for (let dx = -1; dx <= 1; dx++) {
      for (let dy = -1; dy <= 1; dy++) {
        const ids = p.grid.get((gx + dx) * 100003 + (gy + dy));
        if (!ids) continue;
        for (const i of ids) {
          const d = (p.px[i] - sx) ** 2 + (p.py[i] - sy) ** 2;
          if (d <= bestD) {
            bestD = d;
            best = i;
          }
        }
      }
    }
    return best;
  }

  function showTip(i, p, ev) {
    const slot = data.thumb_slot ? data.thumb_slot[i] : -1;
    const ctx = tipCanvas.getContext("2d");
    ctx.clearRect(0, 0, TIP_SIDE, TIP_SIDE);
    if (slot >= 0 && sprite && sprite.complete) {
      const t = data.thumb;
      ctx.imageSmoothingEnabled = false;
      ctx.drawImage(sprite, (slot % data.columns) * t, Math.floor(slot / data.columns) * t, t, t, 0, 0, TIP_SIDE, TIP_SIDE);
      tipCanvas.style.display = "block";
    } else {
      tipCanvas.style.display = "none";
    }
    const lab = data.has_labels ? ` · label ${className[data.label[i]]}` : "";
    const noThumb = data.sprite && slot < 0 ? " (no thumbnail: only a sample of the points has one)" : "";
    tipText.textContent = `index ${data.index[i]}${lab} · ${p.layer.name}${noThumb}`;
    const rect = root.getBoundingClientRect();
    let left = ev.clientX - rect.left + 14;
    let top = ev.clientY - rect.top + 14;
    if (left + TIP_SIDE + 20 > rect.width) left -= TIP_SIDE + 40;
    tip.style.left = `${left}px`;
    tip.style.top = `${top}px`;
    tip.style.display = "block";
  }

  // ---------------------------------------------------------------- events
  const cleanups = [];
  for (const p of panels) {
    let drag = null;
    const onMove = (ev) => {
      const r = p.over.getBoundingClientRect();
      const sx = ev.clientX - r.left;
      const sy = ev.clientY - r.top;
      if (drag) {
        const dx = sx - drag.sx;
        const dy = sy - drag.sy;
        if (Math.abs(dx) + Math.abs(dy) > 3) drag.moved = true;
        p.view.cx = drag.cx - dx / p.view.scale;
        p.view.cy = drag.cy + dy / p.view.scale;
        draw(p);
        drawOverlays();
        return;
      }
      const i = nearest(p, sx, sy);
      if (i !== hover) {
        hover = i;
        drawOverlays();
      }
      if (i >= 0) showTip(i, p, ev);
      else tip.style.display = "none";
      p.over.style.cursor = i >= 0 ? "pointer" : "grab";
    };
    const onLeave = () => {
      drag = null;
      hover = -1;
      tip.style.display = "none";
      drawOverlays();
    };
    const onDown = (ev) => {
      const r = p.over.getBoundingClientRect();
      drag = { sx: ev.clientX - r.left, sy: ev.clientY - r.top, cx: p.view.cx, cy: p.view.cy, moved: false };
    };
    const onUp = (ev) => {
      const wasDrag = drag && drag.moved;
      drag = null;
      if (wasDrag) return;
      const r = p.over.getBoundingClientRect();
      const i = nearest(p, ev.clientX - r.left, ev.clientY - r.top);
      if (i >= 0) setStateValue("selected", { index: data.index[i], layer: p.layer.name, run: data.run });
    };
    const onWheel = (ev) => {
      ev.preventDefault();
      const r = p.over.getBoundingClientRect();
      const sx = ev.clientX - r.left;
      const sy = ev.clientY - r.top;
      const v = p.view;
      const wx = v.cx + (sx - p.w / 2) / v.scale; // the map point under the cursor stays put
      const wy = v.cy - (sy - p.h / 2) / v.scale;
      v.scale *= Math.exp(-ev.deltaY * 0.0015);
      v.cx = wx - (sx - p.w / 2) / v.scale;
      v.cy = wy + (sy - p.h / 2) / v.scale;
      draw(p);
      drawOverlays();
    };
    const onDouble = () => {
      fit(p);
      draw(p);
      drawOverlays();
    };
    p.over.addEventListener("mousemove", onMove);
    p.over.addEventListener("mouseleave", onLeave);
    p.over.addEventListener("mousedown", onDown);
    p.over.addEventListener("mouseup", onUp);
    p.over.addEventListener("wheel", onWheel, { passive: false });
    p.over.addEventListener("dblclick", onDouble);
    cleanups.push(() => {
      p.over.removeEventListener("mousemove", onMove);
      p.over.removeEventListener("mouseleave", onLeave);
      p.over.removeEventListener("mousedown", onDown);
      p.over.removeEventListener("mouseup", onUp);
      p.over.removeEventListener("wheel", onWheel);
      p.over.removeEventListener("dblclick", onDouble);
    });
  }

  const observer = new ResizeObserver(() => {
    for (const p of panels) size(p);
    drawAll();
  });
  observer.observe(row);
  if (sprite) sprite.onload = () => drawOverlays();
  for (const p of panels) size(p);
  drawAll();
  root.setAttribute("data-ready", String(n));

  return () => {
    observer.disconnect();
    for (const undo of cleanups) undo();
    root.remove();
  };
}
