"use strict";
// The stats page: the figures of the Kibana dashboards, from /api/stats, drawn as cards, bars and tables.

const SVG = "http://www.w3.org/2000/svg";

function svgElement(tag, attributes, text) {
  const node = document.createElementNS(SVG, tag);
  for (const [name, value] of Object.entries(attributes)) node.setAttribute(name, value);
  if (text !== undefined) node.textContent = text;
  return node;
}

function number(value, digits = 0) {
  return value === null || value === undefined ? "–" : Number(value).toFixed(digits);
}

function percent(value) {
  return value === null || value === undefined ? "–" : (100 * value).toFixed(1) + "%";
}

function card(label, value) {
  const node = element("div", "card");
  node.append(element("div", "value", value), element("div", "label", label));
  return node;
}

// Bars of queries per bucket, the zero-result part of each drawn darker on top.
function barChart(buckets, unit) {
  const width = 900, height = 180, left = 36, bottom = 22;
  const chart = svgElement("svg", { viewBox: `0 0 ${width} ${height}`, width: "100%", role: "img",
                                    "aria-label": "queries per " + unit });
  const most = Math.max(1, ...buckets.map((b) => b.queries));
  const step = (width - left) / Math.max(1, buckets.length);
  chart.append(svgElement("text", { x: 0, y: 12 }, String(most)), svgElement("text", { x: 0, y: height - bottom }, "0"));
  buckets.forEach((bucket, i) => {
    const x = left + i * step, barWidth = Math.min(40, Math.max(1, step - 2));
    const scale = (height - bottom - 8) / most;
    const total = bucket.queries * scale, zero = bucket.zero_results * scale;
    const bar = svgElement("rect", { x, y: height - bottom - total, width: barWidth, height: total, fill: "#2457c5" });
    bar.append(svgElement("title", {}, `${bucket.start}: ${bucket.queries} queries, ${bucket.zero_results} with no results`));
    chart.append(bar, svgElement("rect", { x, y: height - bottom - zero, width: barWidth, height: zero, fill: "#c0392b" }));
  });
  const label = (bucket) => unit === "hour" ? bucket.start.slice(5, 13).replace("T", " ") + "h" : bucket.start.slice(0, 10);
  if (buckets.length) {
    chart.append(svgElement("text", { x: left, y: height - 4 }, label(buckets[0])));
    chart.append(svgElement("text", { x: width, y: height - 4, "text-anchor": "end" }, label(buckets[buckets.length - 1])));
  }
  return chart;
}

function table(headers, rows) {
  const node = element("table");
  const head = element("tr");
  headers.forEach((h, i) => head.append(element("th", i ? "number" : "", h)));
  node.append(head);
  for (const row of rows) {
    const line = element("tr");
    row.forEach((cell, i) => line.append(element("td", i ? "number" : "", cell)));
    node.append(line);
  }
  return node;
}

// p50 and p95 of each stage as paired horizontal bars, on one scale.
function latencyChart(latency) {
  const rowHeight = 22, left = 70, width = 900;
  const height = latency.length * rowHeight * 2 + 10;
  const chart = svgElement("svg", { viewBox: `0 0 ${width} ${height}`, width: "100%", role: "img", "aria-label": "latency per stage" });
  const most = Math.max(1, ...latency.map((s) => s.p95_ms));
  latency.forEach((stage, i) => {
    const y = i * rowHeight * 2;
    chart.append(svgElement("text", { x: 0, y: y + 15 }, stage.stage));
    [["p50", stage.p50_ms, "#7fa3e8"], ["p95", stage.p95_ms, "#2457c5"]].forEach(([name, value, colour], j) => {
      const barWidth = Math.max(1, (width - left - 120) * value / most);
      chart.append(svgElement("rect", { x: left, y: y + j * rowHeight + 3, width: barWidth, height: rowHeight - 6, fill: colour }));
      chart.append(svgElement("text", { x: left + barWidth + 6, y: y + j * rowHeight + 15 }, `${name} ${value.toFixed(1)} ms`));
    });
  });
  return chart;
}

function show(stats) {
  const index = stats.index || {};
  document.getElementById("cards").replaceChildren(
    card("queries", String(stats.queries_in_window)),
    card("zero-result rate", percent(stats.zero_result_rate)),
    card("reranked", percent(stats.rerank.share)),
    card("documents", number(index.documents)),
    card("passages", number(index.passages)),
    card("index size (MB)", number((index.details || {}).bytes_on_disk / 1e6, 1)),
  );
  document.getElementById("over-time").replaceChildren(stats.over_time.length
    ? barChart(stats.over_time, stats.bucket) : element("p", "meta", "No queries in this period."));
  document.getElementById("latency").replaceChildren(
    latencyChart(stats.latency),
    table(["stage", "queries", "p50 ms", "p95 ms"], stats.latency.map((s) => [s.stage, String(s.queries), number(s.p50_ms, 1), number(s.p95_ms, 1)])),
  );
  document.getElementById("zero").replaceChildren(stats.top_zero_result_queries.length
    ? table(["query", "times"], stats.top_zero_result_queries.map((q) => [q.query, String(q.count)]))
    : element("p", "meta", "Every query found something."));
  const rerank = stats.rerank;
  document.getElementById("rerank").replaceChildren(table(["", ""], [
    ["reranked queries", String(rerank.queries)],
    ["top hit changed by the reranker", percent(rerank.changed_top_rate)],
    ["mean first-stage rank of the new top hit", number(rerank.mean_top_first_stage_rank, 2)],
    ["rerank latency p50 / p95 (ms)", `${number(rerank.p50_ms, 1)} / ${number(rerank.p95_ms, 1)}`],
  ]));
}

async function load() {
  const days = document.getElementById("days").value;
  const statusLine = document.getElementById("status");
  statusLine.textContent = "Loading…";
  try {
    const stats = await api("/api/stats?days=" + days);
    show(stats);
    statusLine.textContent = stats.queries_in_window > stats.queries
      ? `The figures below come from the newest ${stats.queries} of these ${stats.queries_in_window} queries.` : "";
  } catch (error) {
    statusLine.textContent = "Error: " + error.message;
    if (error.status === 401) askForKey(load);
  }
}

document.getElementById("days").addEventListener("change", load);
load();
