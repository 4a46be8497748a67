// The page is one client of the JSON API (/api/estimate, /api/sweep, /api/models); every number comes from it,
// formatted by the server as the CLI prints it. The state lives in `state` and in the URL (a pasted config in
// its fragment, deflated); every control writes the state, and `show` writes every control from it. The charts
// are drawn by charts.js.
"use strict";

const TEXTS = ["tokens", "rank", "targets"];  // typed, read by the server as the CLI reads them
const UP_FRONT = ["adapter_dtype", "kv_dtype", "experts", "window_cache", "mla_cache", "state_dtype"];  // the rest: "More"
const OWN = ["model", ...TEXTS, "methods", "allow_beyond_full_rank"];  // controls of their own in index.html; the others are built from /api/options
let OPTIONS = [];    // GET /api/options: every query option (name, default, help, kind, choices), as the CLI declares it
let METHODS = [];    // the rows one can ask for, and those "all" stands for
let ALL_METHODS = [];
let FIELDS = [];     // the state's keys, in the URL when not at their default
const DEFAULTS = {};  // every option's default, from /api/options
const MAX_FRAGMENT = 16000;  // characters of a deflated config in a link; longer ones are not put in it
const $ = (id) => document.getElementById(id);
const state = {};
let config = null;   // a pasted config.json (an object), used instead of the zoo model
let charts = [];
let timer = null;
let generation = 0;
let lastField = "model";  // the control the person changed last: a refusal is shown next to it

const b64url = (bytes) => btoa(String.fromCharCode(...bytes)).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
const unb64url = (text) => Uint8Array.from(atob(text.replace(/-/g, "+").replace(/_/g, "/")), (c) => c.charCodeAt(0));
async function pipe(bytes, stream) {
  return new Uint8Array(await new Response(new Blob([bytes]).stream().pipeThrough(stream)).arrayBuffer());
}

async function readUrl() {
  const params = new URLSearchParams(window.location.search);
  for (const key of FIELDS) if (params.has(key)) state[key] = params.get(key);
  const hash = new URLSearchParams(window.location.hash.slice(1));
  if (hash.has("config")) {
    try {
      const text = new TextDecoder().decode(await pipe(unb64url(hash.get("config")), new DecompressionStream("deflate-raw")));
      config = JSON.parse(text);
      $("config").value = text;
      $("paste").open = true;
    } catch (error) { showError("the link's config could not be read (" + error.message + "); paste the config.json again", "config"); }
  }
}

let fragment = "";  // the deflated pasted config, for the link
async function pack() {
  fragment = "";
  if (!config) return "";
  const packed = b64url(await pipe(new TextEncoder().encode(JSON.stringify(config)), new CompressionStream("deflate-raw")));
  if (packed.length > MAX_FRAGMENT) return `the pasted config is not in the link: deflated it takes ${packed.length.toLocaleString("en-US")} characters, over ${MAX_FRAGMENT.toLocaleString("en-US")}; share the file with the link`;
  fragment = "config=" + packed;
  return "";
}

const isPanelKey = (key) => key === "panels" || /^(serve|train|compare)\./.test(key);  // panels.js's own
function writeUrl() {
  const params = new URLSearchParams();
  for (const key of FIELDS) if (state[key] !== DEFAULTS[key] && !(key === "model" && config)) params.set(key, state[key]);
  for (const [key, value] of new URLSearchParams(window.location.search)) if (isPanelKey(key)) params.set(key, value);
  const url = window.location.pathname + (params.toString() ? "?" + params : "") + (fragment ? "#" + fragment : "");
  window.history.replaceState(null, "", url);
  $("share").href = url;
}

function tokensFrom(text) {  // 100k -> 100000, to place the slider (the server reads the text itself)
  const m = /^\s*([0-9_]*\.?[0-9]+(?:e[0-9]+)?)\s*([kKmMbBgGtT]?)\s*$/.exec(text);
  if (!m) return null;
  return Number(m[1].replace(/_/g, "")) * { "": 1, k: 1e3, m: 1e6, b: 1e9, g: 1e9, t: 1e12 }[m[2].toLowerCase()];
}

function shortTokens(n) {  // three significant figures: the slider's steps (1.12M), read back exactly by the CLI
  for (const [suffix, scale] of [["T", 1e12], ["B", 1e9], ["M", 1e6], ["k", 1e3]]) {
    if (n >= scale) return +(n / scale).toPrecision(3) + suffix;
  }
  return String(Math.round(n));
}

function show() {  // every control from the state
  for (const key of FIELDS) {
    const control = $(key);
    if (!control || key === "model" || key === "methods") continue;
    if (control.type === "checkbox") control.checked = state[key] === "true"; else control.value = state[key];
  }
  $("model").value = config ? "" : state.model;
  $("pasted-option").hidden = !config;
  const t = tokensFrom(state.tokens);
  if (t) $("tokens-slider").value = Math.log10(t);
  const r = Number(state.rank);
  if (Number.isInteger(r) && r > 0) $("rank-slider").value = Math.round(Math.log2(r));
  const chosen = state.methods === "all" ? ALL_METHODS : state.methods.split(",");
  for (const box of document.querySelectorAll("#methods input")) box.checked = chosen.includes(box.value);
}

function queryParams(extra = {}) {  // the options not at the CLI's default
  const params = config ? {} : { model: state.model };
  for (const key of FIELDS) if (key !== "model" && state[key] !== DEFAULTS[key]) params[key] = state[key];
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

function fieldOf(message) {  // the control a refusal is about: the one just changed, else the one it names
  if (lastField !== "model") return lastField;
  const named = [["token count", "tokens"], ["rank", "rank"], ["target", "targets"], ["config", "config"]];
  for (const [words, key] of named) if (message.includes(words)) return key;
  return "model";
}

function showError(message, field) {
  const error = $("error");
  for (const el of document.querySelectorAll("[aria-invalid]")) el.removeAttribute("aria-invalid");
  error.hidden = !message;
  error.textContent = message || "";
  $("output").classList.toggle("stale", Boolean(message));
  if (!message) return;
  const key = field || fieldOf(message);
  const control = key === "config" ? $("config") : $(key);
  control.setAttribute("aria-invalid", "true");
  (control.closest("label") || control.closest(".buttons") || control).after(error);
  if (key === "config") $("use-config").parentElement.after(error);
}

function cellsRow(cells, method) {
  const tr = document.createElement("tr");
  if (method !== undefined) tr.dataset.method = method;
  for (const text of cells) { const td = document.createElement("td"); td.textContent = text; tr.append(td); }
  return tr;
}

function renderTable(est) {
  $("table").querySelector("tbody").replaceChildren(...est.table.map((row) => cellsRow(row.cells, row.method)));
  $("model-line").textContent = est.summary[0];
  $("summary").textContent = est.summary.slice(1).join(" ");
  $("assumptions").replaceChildren(...est.assumptions.map((text) => { const li = document.createElement("li"); li.textContent = text; return li; }));
  const blob = new Blob([JSON.stringify(est, null, 2)], { type: "application/json" });
  $("dl-json").href = URL.createObjectURL(blob);
  $("dl-csv").hidden = Boolean(config);  // the CSV of a pasted config is in the JSON's rows
  $("dl-csv").href = "/api/estimate?" + new URLSearchParams(queryParams({ format: "csv" }));
}

async function update() {
  const mine = ++generation;
  const why = await pack();
  if (mine !== generation) return;
  $("share-note").textContent = why;
  writeUrl();
  try {
    const rank = Number(state.rank);
    const ranks = [...new Set([8, rank, 128])].filter((r) => r > 0).sort((a, b) => a - b).join(",");
    const [est, tokensSweep, rankSweep] = await Promise.all([
      api("/api/estimate"),
      api("/api/sweep", { tokens: "100:1B:log60", ranks }),
      api("/api/sweep", { tokens: String(state.tokens), ranks: "1:8192:x2" }),
    ]);
    let models = null;
    if (!config) {
      const response = await fetch("/api/models?" + new URLSearchParams({ tokens: state.tokens, rank: state.rank }));
      models = await response.json();
      if (!response.ok) throw new Error(models.error);
    }
    if (mine !== generation) return;  // a newer update is on its way
    showError("");
    renderTable(est);
    renderCharts(tokensSweep, rankSweep, est);
    $("models-part").hidden = !models;
    if (models) $("models").querySelector("tbody").replaceChildren(...models.map((r) => cellsRow(r.cells)));
  } catch (error) {
    if (mine === generation) showError(error.message);
  }
  if (mine === generation) document.body.dataset.ready = String(mine);
}

function schedule(field) {
  lastField = field;
  clearTimeout(timer);
  timer = setTimeout(update, 120);
}

function usePasted() {
  try { config = JSON.parse($("config").value); } catch (error) {
    generation++;  // an update in flight must not clear this
    showError("the pasted text is not JSON (" + error.message + "); paste the whole config.json", "config");
    return;
  }
  show();
  schedule("config");
}

function wire() {
  for (const key of FIELDS) {
    const control = $(key);
    if (!control || key === "model" || key === "methods") continue;
    control.addEventListener("change", () => {
      state[key] = control.type === "checkbox" ? String(control.checked) : control.value.trim();
      show();
      schedule(key === "allow_beyond_full_rank" ? "rank" : key);
    });
  }
  $("model").addEventListener("change", () => {
    if (!$("model").value) return;
    state.model = $("model").value; config = null; show(); schedule("model");
  });
  $("tokens-slider").addEventListener("input", () => {
    state.tokens = shortTokens(10 ** Number($("tokens-slider").value));
    $("tokens").value = state.tokens;
    schedule("tokens");
  });
  $("rank-slider").addEventListener("input", () => {
    state.rank = String(2 ** Number($("rank-slider").value));
    $("rank").value = state.rank;
    schedule("rank");
  });
  for (const box of document.querySelectorAll("#methods input")) {
    box.addEventListener("change", () => {
      const chosen = [...document.querySelectorAll("#methods input:checked")].map((b) => b.value);
      const all = chosen.length === ALL_METHODS.length && ALL_METHODS.every((m) => chosen.includes(m));
      state.methods = all ? "all" : chosen.join(",") || "kv";
      show();
      schedule("methods");
    });
  }
  $("use-config").addEventListener("click", usePasted);
  $("clear-config").addEventListener("click", () => { config = null; $("config").value = ""; show(); schedule("model"); });
  const drop = $("paste");
  drop.addEventListener("dragover", (event) => event.preventDefault());
  drop.addEventListener("drop", async (event) => {
    event.preventDefault();
    const file = event.dataTransfer.files[0];
    if (file) { $("config").value = await file.text(); drop.open = true; usePasted(); }
  });
}

const words = { kv: "KV", mla: "MLA", ia3: "IA3", loreft: "LoReFT", dtype: "dtype" };
const labelOf = (name) => name.split("_").map((w, i) => words[w] || (i ? w : w[0].toUpperCase() + w.slice(1))).join(" ");

function control(option) {  // a labelled control for one option of /api/options, its help read out with it
  const label = document.createElement("label");
  let input;
  if (option.choices) {
    input = document.createElement("select");
    input.append(...option.choices.map((c) => { const o = document.createElement("option"); o.textContent = c; return o; }));
  } else {
    input = document.createElement("input");
    if (option.kind === "flag") input.type = "checkbox"; else { input.size = 9; input.autocomplete = "off"; }
  }
  input.id = option.name;
  const help = document.createElement("small");
  help.id = option.name + "-help"; help.textContent = option.help; help.className = "help";
  input.setAttribute("aria-describedby", help.id);
  input.title = option.help;
  label.className = option.kind === "flag" ? "check" : "";
  label.append(labelOf(option.name) + " ", input);
  return [label, help];
}

async function start() {
  const declared = await (await fetch("/api/options")).json();
  OPTIONS = declared.options;
  ALL_METHODS = declared.all_methods;
  for (const option of OPTIONS) {
    DEFAULTS[option.name] = option.default === null ? "" : String(option.default);
    if (option.name === "methods") METHODS = option.choices;
    if (option.name === "targets") $("target-presets").append(...option.suggestions.map((t) => { const o = document.createElement("option"); o.value = t; return o; }));
    if (OWN.includes(option.name) || option.kind === "list") continue;
    (UP_FRONT.includes(option.name) ? $("up-front") : $("more-options")).append(...control(option));
  }
  for (const [key, help] of [["tokens", "tokens-help"], ["rank", "rank-help"], ["targets", "targets-help"]]) {
    $(help).textContent = OPTIONS.find((o) => o.name === key).help;
  }
  FIELDS = OPTIONS.filter((o) => o.kind !== "list").map((o) => o.name);
  Object.assign(state, DEFAULTS);
  const others = document.createElement("details");  // the rows beyond "all" (peft's other tuners), folded
  others.id = "more-methods";
  others.append(Object.assign(document.createElement("summary"), { textContent: "more rows" }));
  for (const method of METHODS) {
    const label = document.createElement("label");
    const box = document.createElement("input");
    box.type = "checkbox"; box.value = method;
    label.append(box, " " + method);
    (ALL_METHODS.includes(method) ? $("methods") : others).append(label);
  }
  if (others.children.length > 1) $("methods").append(others);
  await readUrl();
  const models = await (await fetch("/api/models")).json();
  const pasted = document.createElement("option");
  pasted.value = ""; pasted.id = "pasted-option"; pasted.textContent = "pasted config.json"; pasted.hidden = true;
  $("model").replaceChildren(pasted, ...models.map((m) => { const o = document.createElement("option"); o.value = m.name; o.textContent = m.display_name; return o; }));
  show();
  wire();
  await update();
}

start();
