// A small hand-written time-series chart on <canvas>: no dependencies, no CDN.
// chart = new LineChart(canvas, {windowS: 60, yMin: 0, yMax: null, format: v => ...});
// chart.push(key, tS, value, color); chart.draw();
"use strict";

const PALETTE = ["#3fb6ff", "#ff8a3d", "#3ddc97", "#c58cff", "#ffd166", "#ff5d8f",
                 "#5ee0e6", "#a3e048", "#f7a1c4", "#9aa7ff"];

function niceStep(range, ticks) {
  const raw = range / Math.max(ticks, 1);
  const mag = Math.pow(10, Math.floor(Math.log10(raw || 1)));
  const norm = raw / mag;
  const step = norm < 1.5 ? 1 : norm < 3 ? 2 : norm < 7 ? 5 : 10;
  return step * mag;
}

function fmtTick(v) {
  const a = Math.abs(v);
  if (a >= 1e6) return (v / 1e6).toFixed(a >= 1e7 ? 0 : 1) + "M";
  if (a >= 1e3) return (v / 1e3).toFixed(a >= 1e4 ? 0 : 1) + "k";
  if (a >= 10 || v === 0) return v.toFixed(0);
  if (a >= 1) return v.toFixed(1);
  return v.toFixed(2);
}

class LineChart {
  constructor(canvas, opts) {
    this.canvas = canvas;
    this.ctx = canvas.getContext("2d");
    this.opts = Object.assign({windowS: 60, yMin: 0, yMax: null, fill: false}, opts || {});
    this.series = new Map();   // key -> {color, label, pts: [[t, v], ...]}
    this.tNow = 0;
  }
  push(key, t, v, color, label) {
    let s = this.series.get(key);
    if (!s) { s = {color, label: label || String(key), pts: []}; this.series.set(key, s); }
    s.color = color; s.seen = t;
    s.pts.push([t, v]);
    const cut = t - this.opts.windowS - 1;
    while (s.pts.length && s.pts[0][0] < cut) s.pts.shift();
    if (t > this.tNow) this.tNow = t;
  }
  prune(liveKeys) {
    for (const k of [...this.series.keys()]) {
      const s = this.series.get(k);
      if (!liveKeys.has(k) && (!s.pts.length || s.pts[s.pts.length - 1][0] < this.tNow - this.opts.windowS)) {
        this.series.delete(k);
      }
    }
  }
  clear() { this.series.clear(); this.tNow = 0; }
  resize() {
    const dpr = window.devicePixelRatio || 1;
    const w = this.canvas.clientWidth || 300, h = this.canvas.clientHeight || 160;
    if (this.canvas.width !== Math.round(w * dpr) || this.canvas.height !== Math.round(h * dpr)) {
      this.canvas.width = Math.round(w * dpr); this.canvas.height = Math.round(h * dpr);
    }
    this.ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
    return [w, h];
  }
  draw() {
    const [w, h] = this.resize();
    const c = this.ctx, o = this.opts;
    const padL = 44, padR = 18, padT = 8, padB = 22;
    const pw = w - padL - padR, ph = h - padT - padB;
    c.clearRect(0, 0, w, h);
    // the window grows from 10 s up to windowS, then scrolls
    const t0 = Math.max(0, this.tNow - o.windowS), t1 = Math.max(this.tNow, t0 + 10);
    let yMax = o.yMax, yMin = o.yMin;
    if (yMax === null) {
      yMax = 0;
      for (const s of this.series.values()) for (const [t, v] of s.pts) if (t >= t0 && v > yMax) yMax = v;
      yMax = yMax <= 0 ? 1 : yMax * 1.12;
    }
    const step = niceStep(yMax - yMin, 4);
    yMax = Math.ceil(yMax / step) * step;
    const X = t => padL + (t - t0) / (t1 - t0) * pw;
    const Y = v => padT + ph - (Math.min(Math.max(v, yMin), yMax) - yMin) / (yMax - yMin) * ph;
    // grid and axes
    c.font = "11px sans-serif"; c.fillStyle = "#8595a6"; c.strokeStyle = "#26313d"; c.lineWidth = 1;
    c.textAlign = "right"; c.textBaseline = "middle";
    for (let v = yMin; v <= yMax + 1e-9; v += step) {
      const y = Math.round(Y(v)) + 0.5;
      c.beginPath(); c.moveTo(padL, y); c.lineTo(padL + pw, y); c.stroke();
      c.fillText(fmtTick(v), padL - 6, y);
    }
    c.textAlign = "center"; c.textBaseline = "top";
    const tStep = niceStep(t1 - t0, 6);
    for (let t = Math.ceil(t0 / tStep) * tStep; t <= t1 + 1e-9; t += tStep) {
      const x = Math.round(X(t)) + 0.5;
      c.beginPath(); c.moveTo(x, padT); c.lineTo(x, padT + ph); c.stroke();
      c.fillText(t.toFixed(0) + " s", x, padT + ph + 5);
    }
    // series
    c.save();
    c.beginPath(); c.rect(padL, padT, pw, ph); c.clip();
    for (const s of this.series.values()) {
      if (s.pts.length < 1) continue;
      c.strokeStyle = s.color; c.lineWidth = 1.8; c.lineJoin = "round";
      c.beginPath();
      let first = true;
      for (const [t, v] of s.pts) {
        if (t < t0 - 1) continue;
        if (first) { c.moveTo(X(t), Y(v)); first = false; } else c.lineTo(X(t), Y(v));
      }
      c.stroke();
      if (o.fill) {
        const last = s.pts[s.pts.length - 1], firstPt = s.pts.find(p => p[0] >= t0 - 1) || last;
        c.lineTo(X(last[0]), Y(yMin)); c.lineTo(X(firstPt[0]), Y(yMin)); c.closePath();
        c.globalAlpha = 0.15; c.fillStyle = s.color; c.fill(); c.globalAlpha = 1;
      }
    }
    c.restore();
    // legend (top-left, inside the plot)
    let lx = padL + 8;
    c.textAlign = "left"; c.textBaseline = "middle"; c.font = "11px sans-serif";
    for (const s of this.series.values()) {
      if (lx > padL + pw - 40) break;
      c.fillStyle = s.color; c.fillRect(lx, padT + 6, 10, 3);
      c.fillStyle = "#c3ceda"; c.fillText(s.label, lx + 14, padT + 8);
      lx += 22 + c.measureText(s.label).width;
    }
  }
}

window.LineChart = LineChart;
window.PALETTE = PALETTE;
