// The page is one client of the JSON API (/api/estimate, /api/sweep, /api/models); every number comes from it.
"use strict";

const METHODS = ["kv", "lora", "dora", "ia3", "loreft", "prefix", "prompt", "full", "pretraining"];
const FIELDS = ["model", "tokens", "rank", "targets", "adapter_dtype", "kv_dtype", "experts", "window_cache",
                "mla_cache", "state_dtype"];
const DEFAULTS = { model: "llama3-70b", tokens: "100k", rank: "32", targets: "all-linear", adapter_dtype: "bf16",
                   kv_dtype: "bf16", experts: "per-expert", window_cache: "w", mla_cache: "latent", state_dtype: "auto",
                   methods: "all" };
const COLOURS = ["#D55E00", "#56B4E9", "#0072B2", "#009E73", "#CC79A7", "#000000"];
const $ = (id) => document.getElementById(id);
const state = { ...DEFAULTS };
let config = null;   // a pasted config.json (an object), used instead of the zoo model
let latest = null;   // the last /api/estimate answer
let charts = [];
let timer = null;
let generation = 0;

function readUrl() {
  const params = new URLSearchParams(window.location.search);
  for (const key of [...FIELDS, "methods"]) if (params.has(key)) state[key] = params.get(key);
}

function writeUrl() {
  const params = new URLSearchParams();
  for (const key of [...FIELDS, "methods"]) if (state[key] !== DEFAULTS[key]) params.set(key, state[key]);
  if (config) params.delete("model");
  const url = window.location.pathname + (params.toString() ? "?" + params : "");
  window.history.replaceState(null, "", url);
  $("share").href = url;
}

function tokensFrom(text) {  // "100k" -> 100000, as the CLI reads it (the server checks it again)
  const m = /^\s*([0-9]*\.?[0-9]+)\s*([kKmMbBgGtT]?)\s*$/.exec(text);
  if (!m) return null;
  const scale = { "": 1, k: 1e3, m: 1e6, b: 1e9, g: 1e9, t: 1e12 }[m[2].toLowerCase()];
  return Number(m[1]) * scale;
}

function shortTokens(n) {
  for (const [suffix, scale] of [["T", 1e12], ["B", 1e9], ["M", 1e6], ["k", 1e3]]) {
    if (n >= scale) { const v = n / scale; return (Number.isInteger(v) ? v : +v.toPrecision(3)) + suffix; }
  }
  return String(Math.round(n));
}

const number = (v, digits = 2) => v === null || v === undefined ? "—"
  : Number.isInteger(v) ? v.toLocaleString("en-US")
  : v.toLocaleString("en-US", { minimumFractionDigits: digits, maximumFractionDigits: digits });
const ratio = (v) => v === null || v === undefined ? "—"
  : v >= 1000 ? Math.round(v).toLocaleString("en-US") + "x" : (v >= 10 ? v.toFixed(1) : v.toFixed(2).replace(/0$/, "")) + "x";

function syncInputs() {
  for (const key of FIELDS) if ($(key) && key !== "model") $(key).value = state[key];
  if ($("model").querySelector(`option[value="${CSS.escape(state.model)}"]`)) $("model").value = state.model;
  $("tokens-text").value = state.tokens;
  const t = tokensFrom(state.tokens);
  if (t) $("tokens").value = Math.log10(t);
  $("rank-text").value = state.rank;
  $("rank").value = Math.round(Math.log2(Number(state.rank) || 1));
  const chosen = state.methods === "all" ? METHODS : state.methods.split(",");
  for (const box of document.querySelectorAll("#methods input")) box.checked = chosen.includes(box.value);
}

function queryParams(extra = {}) {
  const params = {};
  for (const key of FIELDS) if (!(key === "model" && config)) params[key] = state[key];
  params.methods = state.methods;
  return { ...params, ...extra };
}

async function api(path, extra = {}) {
  const params = queryParams(extra);
  const response = config
    ? await fetch(path, { method: "POST", headers: { "Content-Type": "application/json" },
                          body: JSON.stringify({ ...params, config }) })
    : await fetch(path + "?" + new URLSearchParams(params));
  const body = await response.json();
  if (!response.ok) throw new Error(body.error || response.statusText);
  return body;
}

function showError(message) {
  $("error").hidden = !message;
  $("error").textContent = message || "";
}

function renderTable(est) {
  const body = $("table").querySelector("tbody");
  body.replaceChildren();
  for (const row of est.methods) {
    const tr = document.createElement("tr");
    tr.dataset.method = row.method;
    for (const text of [row.label, number(row.params), number(row.bytes), number(row.bytes_per_token),
                        ratio(row.kv_to_this_bytes_ratio)]) {
      const td = document.createElement("td");
      td.textContent = text;
      tr.append(td);
    }
    body.append(tr);
  }
  $("model-line").textContent = est.summary[0];
  $("summary").textContent = est.summary.slice(1).join(" ");
  const list = $("assumptions");
  list.replaceChildren(...est.assumptions.map((text) => { const li = document.createElement("li"); li.textContent = text; return li; }));
  const blob = new Blob([JSON.stringify(est, null, 2)], { type: "application/json" });
  $("dl-json").href = URL.createObjectURL(blob);
  $("dl-csv").href = config ? "#" : "/api/estimate?" + new URLSearchParams(queryParams({ format: "csv" }));
}

const tick = (v) => v === null || v === undefined ? "" : v >= 1 ? shortTokens(v) : v.toPrecision(1);

function chart(target, title, xs, series, xLabel) {
  const width = Math.min(560, Math.max(320, target.parentElement.parentElement.clientWidth / 2 - 20));
  const opts = {
    title, width, height: 300,
    scales: { x: { distr: 3, time: false }, y: { distr: 3 } },
    axes: [{ label: xLabel, values: (u, ticks) => ticks.map(tick) },
           { label: "bytes per token", size: 70, values: (u, ticks) => ticks.map(tick) }],
    series: [{ label: xLabel }, ...series.map((s, i) => ({ label: s.label, stroke: COLOURS[i % COLOURS.length], width: 2,
                                                           dash: s.dash, spanGaps: false }))],
  };
  target.replaceChildren();
  return new uPlot(opts, [xs, ...series.map((s) => s.values)], target);
}

function renderCharts(tokensSweep, rankSweep, est) {
  charts.forEach((c) => c.destroy());
  const byRank = new Map();
  for (const row of tokensSweep.rows) {
    if (!byRank.has(row.rank)) byRank.set(row.rank, []);
    byRank.get(row.rank).push(row);
  }
  const first = [...byRank.values()][0];
  const xs = first.map((r) => r.tokens);
  const series = [{ label: "KV cache", values: first.map((r) => r.kv_bytes_per_token) }];
  for (const [rank, rows] of byRank) series.push({ label: `LoRA r=${rank}`, values: rows.map((r) => r.lora_bytes_per_token) });
  const pre = est.methods.find((m) => m.method === "pretraining");
  if (pre) series.push({ label: "pretraining", values: xs.map(() => pre.bytes_per_token), dash: [6, 4] });
  const ranks = rankSweep.rows.map((r) => r.rank);
  charts = [
    chart($("chart-tokens"), "", xs, series, "tokens"),
    chart($("chart-rank"), "", ranks, [{ label: "KV cache", values: rankSweep.rows.map((r) => r.kv_bytes_per_token) },
                                       { label: "LoRA", values: rankSweep.rows.map((r) => r.lora_bytes_per_token) }], "rank"),
  ];
  const canvas = $("chart-tokens").querySelector("canvas");
  if (canvas) $("dl-png").href = canvas.toDataURL("image/png");
}

function renderModels(records) {
  const body = $("models").querySelector("tbody");
  body.replaceChildren();
  for (const r of records) {
    const tr = document.createElement("tr");
    for (const text of [r.display_name, number(r.params), number(r.kv_bytes_per_token), ratio(r.kv_to_lora_bytes_ratio)]) {
      const td = document.createElement("td");
      td.textContent = text;
      tr.append(td);
    }
    body.append(tr);
  }
}

async function update() {
  const mine = ++generation;
  writeUrl();
  try {
    const rank = Number(state.rank);
    const ranks = [...new Set([8, rank, 128])].sort((a, b) => a - b).join(",");
    const [est, tokensSweep, rankSweep] = await Promise.all([
      api("/api/estimate"),
      api("/api/sweep", { tokens: "100:1B:log60", ranks }),
      api("/api/sweep", { tokens: String(state.tokens), ranks: "1:8192:x2" }),
    ]);
    if (mine !== generation) return;  // a newer update is on its way
    showError("");
    latest = est;
    renderTable(est);
    renderCharts(tokensSweep, rankSweep, est);
    if (!config) {
      const models = await (await fetch("/api/models?" + new URLSearchParams({ tokens: state.tokens, rank: state.rank }))).json();
      if (mine === generation && Array.isArray(models)) renderModels(models);
    }
    document.body.dataset.ready = String(mine);
  } catch (error) {
    if (mine === generation) { showError(error.message); document.body.dataset.ready = String(mine); }
  }
}

function schedule() {
  clearTimeout(timer);
  timer = setTimeout(update, 120);
}

function wire() {
  for (const key of FIELDS) {
    if (!$(key) || key === "model") continue;
    $(key).addEventListener("change", () => { state[key] = $(key).value; schedule(); });
  }
  $("model").addEventListener("change", () => { state.model = $("model").value; config = null; schedule(); });
  $("tokens").addEventListener("input", () => {
    state.tokens = shortTokens(Math.round(10 ** Number($("tokens").value)));
    $("tokens-text").value = state.tokens;
    schedule();
  });
  $("tokens-text").addEventListener("change", () => { state.tokens = $("tokens-text").value.trim(); syncInputs(); schedule(); });
  $("rank").addEventListener("input", () => { state.rank = String(2 ** Number($("rank").value)); $("rank-text").value = state.rank; schedule(); });
  $("rank-text").addEventListener("change", () => { state.rank = $("rank-text").value; syncInputs(); schedule(); });
  for (const box of document.querySelectorAll("#methods input")) {
    box.addEventListener("change", () => {
      const chosen = [...document.querySelectorAll("#methods input:checked")].map((b) => b.value);
      state.methods = chosen.length === METHODS.length ? "all" : chosen.join(",") || "kv";
      schedule();
    });
  }
  $("use-config").addEventListener("click", () => {
    try { config = JSON.parse($("config").value); } catch (error) { showError("the pasted text is not JSON: " + error.message); return; }
    schedule();
  });
  $("clear-config").addEventListener("click", () => { config = null; $("config").value = ""; schedule(); });
  const drop = $("paste");
  drop.addEventListener("dragover", (event) => event.preventDefault());
  drop.addEventListener("drop", async (event) => {
    event.preventDefault();
    const file = event.dataTransfer.files[0];
    if (file) { $("config").value = await file.text(); drop.open = true; $("use-config").click(); }
  });
}

async function start() {
  for (const method of METHODS) {
    const label = document.createElement("label");
    const box = document.createElement("input");
    box.type = "checkbox"; box.value = method;
    label.append(box, " " + method);
    $("methods").append(label);
  }
  readUrl();
  const models = await (await fetch("/api/models")).json();
  $("model").replaceChildren(...models.map((m) => { const o = document.createElement("option"); o.value = m.name; o.textContent = m.display_name; return o; }));
  syncInputs();
  wire();
  await update();
}

start();
