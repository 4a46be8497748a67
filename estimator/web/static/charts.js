// The page's two charts (uPlot), from /api/sweep's rows and the estimate: bytes per token against tokens and
// against the rank at T, each with its marks (T, the crossover, the context window; the rank, the parity rank).
"use strict";

const COLOURS = ["#D55E00", "#56B4E9", "#0072B2", "#009E73", "#CC79A7", "#000000"];

const tick = (v) => v === null || v === undefined ? "" : v >= 1 ? shortTokens(v) : +v.toPrecision(1) + "";
const decades = (u, axis, min, max) => {
  const out = [];
  for (let e = Math.ceil(Math.log10(min) - 1e-9); e <= Math.floor(Math.log10(max) + 1e-9); e++) out.push(10 ** e);
  return out;
};

function markers(marks) {  // vertical lines, labelled, at the x of each mark: the chart's reading of the query
  return { hooks: { draw: (u) => {
    const ctx = u.ctx;
    ctx.save();
    ctx.font = `${12 * devicePixelRatio}px system-ui, sans-serif`;
    marks.forEach((m, i) => {
      if (!(m.x >= u.scales.x.min && m.x <= u.scales.x.max)) return;
      const x = Math.round(u.valToPos(m.x, "x", true));
      ctx.strokeStyle = m.colour; ctx.fillStyle = m.colour; ctx.lineWidth = devicePixelRatio;
      ctx.setLineDash([4 * devicePixelRatio, 3 * devicePixelRatio]);
      ctx.beginPath(); ctx.moveTo(x, u.bbox.top); ctx.lineTo(x, u.bbox.top + u.bbox.height); ctx.stroke();
      const right = x + ctx.measureText(m.label).width + 4 * devicePixelRatio > u.bbox.left + u.bbox.width;
      ctx.textAlign = right ? "right" : "left"; ctx.textBaseline = "top";
      ctx.fillText(m.label, x + (right ? -3 : 3) * devicePixelRatio, u.bbox.top + (2 + 14 * i) * devicePixelRatio);
    });
    ctx.restore();
  } } };
}

function chart(target, xs, series, xLabel, marks) {
  const room = target.parentElement.parentElement.clientWidth;  // two side by side where they fit, else one
  const width = Math.max(260, Math.min(560, room >= 1000 ? room / 2 - 12 : room - 4));
  const grid = { stroke: "#ececec", width: 1 };
  const opts = {
    width, height: 280, legend: { live: false }, plugins: [markers(marks)],
    scales: { x: { distr: 3, time: false }, y: { distr: 3 } },
    axes: [{ label: xLabel, grid, splits: decades, values: (u, ticks) => ticks.map(tick) },
           { label: "bytes per token", size: 60, grid, splits: decades, values: (u, ticks) => ticks.map(tick) }],
    series: [{ label: xLabel }, ...series.map((s, i) => ({ label: s.label, stroke: COLOURS[i % COLOURS.length], width: 2,
                                                           dash: s.dash, spanGaps: false }))],
  };
  target.replaceChildren();
  const plot = new uPlot(opts, [xs, ...series.map((s) => s.values)], target);
  plot.marks = marks;
  return plot;
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
  const T = est.query.tokens, rank = est.query.rank;
  const whole = (n) => n.toLocaleString("en-US");
  const tokenMarks = [{ label: `T = ${whole(T)}`, x: T, colour: "#000" }];
  if (est.crossover_tokens) tokenMarks.push({ label: `crossover at r=${rank}: ${whole(est.crossover_tokens)}`, x: est.crossover_tokens, colour: "#0072B2" });
  const context = est.model.context_window_tokens;
  if (context) tokenMarks.push({ label: `context window ${whole(context)}`, x: context, colour: "#777" });
  const rankMarks = [{ label: `r = ${rank}`, x: rank, colour: "#000" }];
  if (est.parity_rank) rankMarks.push({ label: `parity rank ${whole(est.parity_rank)}`, x: est.parity_rank, colour: "#0072B2" });
  charts = [
    chart($("chart-tokens"), xs, series, "tokens", tokenMarks),
    chart($("chart-rank"), rankSweep.rows.map((r) => r.rank),
          [{ label: `KV cache at T = ${shortTokens(T)}`, values: rankSweep.rows.map((r) => r.kv_bytes_per_token) },
           { label: "LoRA", values: rankSweep.rows.map((r) => r.lora_bytes_per_token) }], "rank", rankMarks),
  ];
  const canvas = $("chart-tokens").querySelector("canvas");
  if (canvas) $("dl-png").href = canvas.toDataURL("image/png");
}

