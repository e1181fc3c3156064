// NeuralEmu dashboard: reads /stream (WebSocket) and drives the REST controls.
// The latest values are written into the DOM (data-value attributes) so tests
// and scripts can read exactly what is plotted.
"use strict";

const params = new URLSearchParams(location.search);
const TOKEN = params.get("token");
const $ = id => document.getElementById(id);

async function api(method, path, body) {
  const headers = {};
  if (TOKEN) headers["Authorization"] = "Bearer " + TOKEN;
  if (body !== undefined) headers["Content-Type"] = "application/json";
  const res = await fetch(path, {method, headers, body: body === undefined ? undefined : JSON.stringify(body)});
  const text = await res.text();
  let data = null;
  try { data = text ? JSON.parse(text) : null; } catch (e) { data = text; }
  if (!res.ok) {
    const d = data && data.detail;
    const msg = Array.isArray(d) ? d.map(x => (x.loc || []).join(".") + ": " + x.msg).join("; ") : String(d || res.status);
    throw new Error(msg);
  }
  return data;
}

function say(msg, isErr) {
  const m = $("message");
  m.textContent = msg;
  m.className = "message" + (isErr ? " err" : "");
}

// ---- charts ------------------------------------------------------------------------------
const charts = {
  throughput: new LineChart($("chart-throughput"), {fill: true}),
  buffer: new LineChart($("chart-buffer"), {}),
  prbs: new LineChart($("chart-prbs"), {}),
  mcs: new LineChart($("chart-mcs"), {yMax: 28}),
  delay: new LineChart($("chart-delay"), {}),
  util: new LineChart($("chart-util"), {yMax: 100, fill: true}),
};
const colorOf = new Map();
function ueColor(id) {
  if (!colorOf.has(id)) colorOf.set(id, PALETTE[colorOf.size % PALETTE.length]);
  return colorOf.get(id);
}
let currentScenario = null;
let lastT = -1;

function fmtRate(bps) {
  if (bps >= 1e9) return (bps / 1e9).toFixed(2) + " Gbit/s";
  if (bps >= 1e6) return (bps / 1e6).toFixed(1) + " Mbit/s";
  if (bps >= 1e3) return (bps / 1e3).toFixed(0) + " kbit/s";
  return bps.toFixed(0) + " bit/s";
}
function fmtBytes(b) {
  if (b >= 1e6) return (b / 1e6).toFixed(2) + " MB";
  if (b >= 1e3) return (b / 1e3).toFixed(1) + " kB";
  return b.toFixed(0) + " B";
}

function cell(value, text) {
  const td = document.createElement("td");
  td.dataset.value = String(value);
  td.textContent = text;
  return td;
}

function renderTable(ues) {
  const tbody = $("ue-rows");
  const rows = [];
  for (const u of ues) {
    const tr = document.createElement("tr");
    tr.id = "ue-" + u.id;
    tr.dataset.ue = String(u.id);
    if (u.background) tr.className = "bg";
    const sw = document.createElement("td");
    sw.className = "swatch";
    sw.innerHTML = '<span style="background:' + ueColor(u.id) + '"></span>';
    tr.appendChild(sw);
    const name = document.createElement("td");
    name.textContent = (u.name ? u.name + " " : "") + "#" + u.id + (u.background ? " (bg)" : "");
    tr.appendChild(name);
    const add = (metric, value, text) => { const td = cell(value, text); td.dataset.metric = metric; tr.appendChild(td); };
    add("throughput_bps", u.throughput_bps, fmtRate(u.throughput_bps || 0));
    add("buffer_bytes", u.buffer_bytes, fmtBytes(u.buffer_bytes || 0));
    add("prbs_avg", u.prbs_avg, (u.prbs_avg || 0).toFixed(1));
    add("mcs", u.mcs, u.mcs < 0 ? "–" : String(u.mcs));
    add("cqi", u.cqi, String(u.cqi ?? "–"));
    add("delay_ms_p50", u.delay_ms_p50, (u.delay_ms_p50 || 0).toFixed(1) + " ms");
    add("delay_ms_p95", u.delay_ms_p95, (u.delay_ms_p95 || 0).toFixed(1) + " ms");
    add("drops", u.drops, String(u.drops ?? 0));
    rows.push(tr);
  }
  tbody.replaceChildren(...rows);
}

function onStats(s) {
  document.body.dataset.state = s.state || "idle";
  document.body.dataset.seq = String(s.seq || 0);
  document.body.dataset.slot = String(s.slot || 0);
  $("state").textContent = s.state || "idle";
  document.body.dataset.mode = s.mode || "";
  $("mode").textContent = s.mode || "–";
  $("scenario-id").textContent = s.scenario_id || "–";
  $("policy-name").textContent = (typeof s.policy === "string" ? s.policy : (s.policy && s.policy.name)) || "–";
  $("slot").textContent = String(s.slot || 0);
  const t = (s.t_us || 0) / 1e6;
  $("t-emul").textContent = t.toFixed(1) + " s";
  const lat = s.slot_lateness_us || {};
  $("lateness-p99").textContent = lat.count ? (lat.p99 / 1000).toFixed(2) + " ms" : "–";
  if (s.scenario_id !== currentScenario || t < lastT) {
    for (const c of Object.values(charts)) c.clear();
    currentScenario = s.scenario_id;
  }
  const ues = s.ues || [];
  const util = 100 * (s.prb_utilization || 0);
  $("cell-util").dataset.value = String(s.prb_utilization || 0);
  $("cell-util").textContent = util.toFixed(1) + " %";
  if (s.state === "running" && t > lastT) {
    const live = new Set();
    for (const u of ues) {
      const col = ueColor(u.id), label = "UE " + u.id;
      live.add(u.id);
      charts.throughput.push(u.id, t, (u.throughput_bps || 0) / 1e6, col, label);
      charts.buffer.push(u.id, t, (u.buffer_bytes || 0) / 1e3, col, label);
      charts.prbs.push(u.id, t, u.prbs_avg || 0, col, label);
      if (u.mcs >= 0) charts.mcs.push(u.id, t, u.mcs, col, label);
      charts.delay.push(u.id, t, u.delay_ms_p50 || 0, col, label);
    }
    charts.util.push("cell", t, util, "#3fb6ff", "cell");
    for (const [k, c] of Object.entries(charts)) if (k !== "util") c.prune(live);
    lastT = t;
  } else if (t < lastT) {
    lastT = t;
  }
  renderTable(ues);
  scheduleDraw();
}

let drawPending = false;
function scheduleDraw() {
  if (drawPending) return;
  drawPending = true;
  const go = () => { drawPending = false; for (const c of Object.values(charts)) c.draw(); };
  if (document.hidden) setTimeout(go, 0); else requestAnimationFrame(go);
}
window.addEventListener("resize", scheduleDraw);

// ---- stream ----------------------------------------------------------------------------
function connect() {
  const proto = location.protocol === "https:" ? "wss:" : "ws:";
  const url = proto + "//" + location.host + "/stream" + (TOKEN ? "?token=" + encodeURIComponent(TOKEN) : "");
  const ws = new WebSocket(url);
  ws.onopen = () => { $("conn").textContent = "live"; $("conn").className = "pill on"; };
  ws.onmessage = ev => {
    const msg = JSON.parse(ev.data);
    if (msg.type === "snapshot") {
      if (msg.policy) $("policy-select").value = msg.policy.name;
      if (msg.background && msg.background.load_level !== null && msg.background.load_level !== undefined) {
        $("bg-count").value = msg.background.count;
        $("bg-load").value = msg.background.load_level;
        $("bg-load-val").textContent = Number(msg.background.load_level).toFixed(2);
      }
      refreshScenarios();
    }
    onStats(msg);
  };
  ws.onclose = () => {
    $("conn").textContent = "offline"; $("conn").className = "pill off";
    setTimeout(connect, 1000);
  };
}

// ---- controls ----------------------------------------------------------------------------
async function refreshScenarios() {
  try {
    const list = await api("GET", "/scenarios");
    const sel = $("scenario-select");
    const keep = sel.value;
    sel.replaceChildren(...list.map(s => {
      const o = document.createElement("option");
      o.value = s.id; o.textContent = (s.name || s.id) + " [" + s.state + "]";
      return o;
    }));
    const running = list.find(s => s.state === "running" || s.state === "paused");
    sel.value = running ? running.id : (keep || (list[0] && list[0].id) || "");
  } catch (e) { say(e.message, true); }
}

async function refreshPolicyArgs() {
  const name = $("policy-select").value, arg = $("policy-arg");
  if (name !== "learned" && name !== "replay") { arg.hidden = true; return; }
  arg.hidden = false;
  try {
    const items = await api("GET", name === "learned" ? "/models" : "/traces");
    arg.replaceChildren(...items.map(m => { const o = document.createElement("option"); o.value = m.name; o.textContent = m.name; return o; }));
  } catch (e) { say(e.message, true); }
}

function lifecycle(op) {
  return async () => {
    const id = $("scenario-select").value;
    if (!id) { say("no scenario: POST /scenarios first", true); return; }
    const mode = $("mode-select").value;
    const body = op === "start" && mode ? {mode} : undefined;
    try {
      const r = await api("POST", "/scenarios/" + id + "/" + op, body);
      say(op + ": " + r.state + (r.mode ? " (" + r.mode + ")" : "")); refreshScenarios();
    }
    catch (e) { say(e.message, true); }
  };
}

$("btn-start").onclick = lifecycle("start");
$("btn-stop").onclick = lifecycle("stop");
$("btn-pause").onclick = lifecycle("pause");
$("btn-resume").onclick = lifecycle("resume");
$("policy-select").onchange = refreshPolicyArgs;
$("btn-policy").onclick = async () => {
  const name = $("policy-select").value, body = {name};
  if (name === "learned") body.model = $("policy-arg").value;
  if (name === "replay") body.trace = $("policy-arg").value;
  try { const r = await api("PUT", "/policy", body); say("policy " + r.name + " applied in " + r.applied_after_ms.toFixed(1) + " ms"); }
  catch (e) { say(e.message, true); }
};
$("bg-load").oninput = () => { $("bg-load-val").textContent = Number($("bg-load").value).toFixed(2); };
$("btn-bg").onclick = async () => {
  try {
    await api("PUT", "/background", {count: Number($("bg-count").value), load_level: Number($("bg-load").value)});
    say("background set");
  } catch (e) { say(e.message, true); }
};

api("GET", "/version").then(v => { $("version").textContent = v.version; }).catch(() => {});
refreshScenarios();
connect();
