// The panels for memory to serve (/api/serve-memory), to fine-tune (/api/train-memory) and the comparison of
// models (/api/compare). Each panel's controls are built from the options the server declares for its command
// (GET /api/options: "commands"); its tables are the CLI's, cell by cell, as the server sends them (cells=true).
// Serving and fine-tuning take the page's model; a panel asks the server only while it is open. The URL keeps the
// open panels (panels=serve,compare) and each value away from its default (serve.tp=2), so a link gives the view.
"use strict";
(() => {
  const PANELS = {
    "serve-memory": {
      id: "serve", fields: ["tokens", "engine", "accelerator", "memory", "tp", "batch", "weights_dtype",
                            "memory_fraction", "kv_dtype", "max_num_seqs"],
      tables: (data) => [{rows: data.tables.pool}, {rows: data.tables.verdict}],
      words: (data) => data.tables.headline,
    },
    "train-memory": {
      id: "train", fields: ["tokens", "way", "optimizer", "checkpointing", "loss", "precision", "micro_batch", "gpus",
                            "zero", "rank", "targets", "accelerator", "memory"],
      tables: (data) => [{rows: data.tables.components}], words: () => "",
    },
    "compare": {
      id: "compare", fields: ["model", "tokens", "rank", "targets", "kv_dtype"],
      tables: (data) => data.tables.map((t) => ({rows: [t.head, ...t.rows], before: t.caption, after: t.notes.join(" ")})),
      words: (data) => data.footnote,
    },
  };
  const FIRST_COMPARED = "llama3-8b,qwen3-8b";  // the example of compare's --model help
  const byId = (id) => document.getElementById(id);
  const declared = {};  // command -> {name -> record}
  const values = {};    // command -> {name -> the control's value}
  const serial = {};    // command -> the number of the latest request (a late answer to an older one is dropped)
  const timers = {};

  function labelOf(name) {
    return name.replace(/_/g, " ").replace(/^tp$/, "TP (tensor-parallel GPUs)").replace(/^zero$/, "ZeRO stage")
      .replace(/^gpus$/, "GPUs");
  }

  function control(command, record) {  // a select for a closed option, a checkbox for a flag, else a text field
    const id = `${PANELS[command].id}-${record.name}`;
    const label = document.createElement("label");
    label.append(labelOf(record.name) + " ");
    let input;
    if (record.choices && record.choices.length) {
      input = document.createElement("select");
      if (record.default === null) input.append(new Option("(default)", ""));
      for (const choice of record.choices) input.append(new Option(choice, choice));
    } else if (record.kind === "flag") {
      input = document.createElement("input");
      input.type = "checkbox";
      label.classList.add("check");
    } else {
      input = document.createElement("input");
      input.autocomplete = "off";
      input.size = 10;
      if (record.default === null) input.placeholder = "default";
    }
    input.id = id;
    input.name = record.name;
    input.title = record.help;
    input.setAttribute("aria-describedby", `${id}-help`);
    const help = document.createElement("small");
    help.id = `${id}-help`;
    help.className = "help";
    help.textContent = record.help;
    label.append(input);
    return [label, help, input];
  }

  function read(command, input) {
    return input.type === "checkbox" ? String(input.checked) : input.value.trim();
  }

  function build(command, records) {
    const panel = PANELS[command];
    const box = byId(`${panel.id}-controls`);
    declared[command] = Object.fromEntries(records.map((r) => [r.name, r]));
    values[command] = {};
    for (const name of panel.fields) {
      const record = declared[command][name];
      if (!record) continue;
      const [label, help, input] = control(command, record);
      const linked = new URLSearchParams(window.location.search).get(`${panel.id}.${name}`);
      const start = linked !== null ? linked : name === "model" ? FIRST_COMPARED : record.default;
      if (input.type === "checkbox") input.checked = start === "true"; else input.value = start === null ? "" : start;
      values[command][name] = read(command, input);
      box.append(label, help);
      const changed = () => {
        values[command][name] = read(command, input);
        clearTimeout(timers[command]);
        timers[command] = setTimeout(() => ask(command, name), input.tagName === "SELECT" ? 0 : 250);
      };
      input.addEventListener("change", changed);
      if (input.tagName === "INPUT" && input.type !== "checkbox") input.addEventListener("input", changed);
    }
  }

  function writeUrl() {  // the panels' part of the URL; app.js keeps it when it writes its own
    const params = new URLSearchParams(window.location.search);
    for (const key of [...params.keys()]) if (key === "panels" || /^(serve|train|compare)\./.test(key)) params.delete(key);
    const open = Object.values(PANELS).filter((p) => byId(`${p.id}-panel`).open).map((p) => p.id);
    if (open.length) params.set("panels", open.join(","));
    for (const [command, panel] of Object.entries(PANELS)) {
      for (const [name, value] of Object.entries(values[command] || {})) {
        const record = declared[command][name];
        const start = name === "model" ? FIRST_COMPARED : record.default === null ? "" : record.default;
        if (value !== start) params.set(`${panel.id}.${name}`, value);
      }
    }
    const url = window.location.pathname + (params.toString() ? "?" + params : "") + window.location.hash;
    window.history.replaceState(null, "", url);
    if (byId("share")) byId("share").href = url;
  }

  function query(command) {  // what differs from the command's defaults, and the page's model
    const params = new URLSearchParams();
    const model = byId("model");
    if (command !== "compare" && model) params.set("model", model.value);
    for (const [name, value] of Object.entries(values[command])) {
      const record = declared[command][name];
      if (value !== "" && value !== (record.default === null ? "" : record.default)) params.set(name, value);
    }
    params.set("cells", "true");
    return params;
  }

  function table({rows, before, after}) {  // the CLI's table, with the line it prints above and below it
    const label = before || rows[0][0];
    const box = document.createElement("div");
    box.className = "scroll";
    box.tabIndex = 0;
    box.setAttribute("role", "region");
    box.setAttribute("aria-label", label);
    const element = document.createElement("table");
    const head = element.createTHead().insertRow();
    for (const cell of rows[0]) {
      const th = document.createElement("th");
      th.scope = "col";
      th.textContent = cell;
      head.append(th);
    }
    const body = element.createTBody();
    for (const row of rows.slice(1)) {
      const tr = body.insertRow();
      for (const cell of row) tr.insertCell().textContent = cell;
    }
    box.append(element);
    const words = (text) => Object.assign(document.createElement("p"), {className: "words", textContent: text});
    return [...(before ? [words(before)] : []), box, ...(after ? [words(after)] : [])];
  }

  async function ask(command, field) {
    const panel = PANELS[command];
    const root = byId(`${panel.id}-panel`);
    if (declared[command]) writeUrl();
    if (!root.open || !declared[command]) return;
    const model = byId("model");
    if (command !== "compare" && model && !model.value) {  // the page has not yet filled its model: ask after it
      setTimeout(() => ask(command, field), 50);
      return;
    }
    const pasted = byId("paste-note");  // serving and fine-tuning read zoo models here (the CLI: --config FILE)
    if (pasted) pasted.hidden = command === "compare" || typeof config === "undefined" || config === null;
    const number = (serial[command] || 0) + 1;
    serial[command] = number;
    const error = byId(`${panel.id}-error`);
    let data = null;
    let line = "";
    try {
      const answer = await fetch(`/api/${command}?` + query(command));
      const body = await answer.json();
      if (answer.ok) data = body; else line = body.error || `HTTP ${answer.status}`;
      if (answer.ok && answer.headers.get("X-Left-Out")) line = decodeURIComponent(answer.headers.get("X-Left-Out"));
    } catch (failure) {
      line = `the server did not answer (${failure.message}); is \`estimate serve\` still running?`;
    }
    if (number !== serial[command]) return;  // a newer request is on its way
    for (const input of byId(`${panel.id}-controls`).querySelectorAll("[aria-invalid]")) input.removeAttribute("aria-invalid");
    error.textContent = line;
    error.hidden = !line;
    error.className = data ? "note" : "alert";
    root.classList.toggle("stale", !data);
    if (!data) {
      const culprit = field && byId(`${panel.id}-${field}`);
      if (culprit) {
        culprit.setAttribute("aria-invalid", "true");
        culprit.closest("label").after(error);  // the CLI's line next to the field
      }
    } else {
      const records = command === "compare" ? data.records : data;
      const out = byId(`${panel.id}-tables`);
      out.replaceChildren(...panel.tables(data).flatMap(table));
      byId(`${panel.id}-words`).textContent = panel.words(data);
      root.dataset.model = Array.isArray(records) ? records.map((r) => r.model).join(",") : records.model;
      byId(`${panel.id}-controls`).after(error);
    }
    root.dataset.ready = String(number);
  }

  async function start() {
    let records;
    try {
      records = (await (await fetch("/api/options")).json()).commands;
    } catch (failure) { return; }
    for (const command of Object.keys(PANELS)) {
      build(command, records[command] || []);
      byId(`${PANELS[command].id}-panel`).addEventListener("toggle", () => ask(command, null));
    }
    const linked = (new URLSearchParams(window.location.search).get("panels") || "").split(",");
    for (const panel of Object.values(PANELS)) if (linked.includes(panel.id)) byId(`${panel.id}-panel`).open = true;
    const model = byId("model");
    if (model) model.addEventListener("change", () => { ask("serve-memory", null); ask("train-memory", null); });
  }

  start();
})();
