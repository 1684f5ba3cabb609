/* shopstream console: hand-written, no framework, no build step, nothing from a CDN.
 *
 * Every page is drawn here from JSON: the pipeline sampler's stream (/api/stream:
 * "history" once, then a "sample" every few seconds), an order's timeline stream
 * (/api/orders/ID/stream) and a few on-demand reads (/api/dead-letters, /api/schemas).
 * Text always goes in through textContent (never innerHTML), so event data cannot
 * inject markup.
 */
"use strict";

const SVG_NS = "http://www.w3.org/2000/svg";
const PALETTE = ["#4fb3ff", "#3fcf8e", "#f5b041", "#b48cff", "#ff8ac9", "#5ee0e0", "#ff6b6b", "#c7d46a"];
const STAGES = ["PENDING_PAYMENT", "PAID", "CONFIRMED", "SHIPPED"];
const MAX_HISTORY = 600;

// -- tiny DOM helpers -------------------------------------------------------------------

function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  setAttrs(el, attrs);
  append(el, children);
  return el;
}

function s(tag, attrs, ...children) {
  const el = document.createElementNS(SVG_NS, tag);
  setAttrs(el, attrs);
  append(el, children);
  return el;
}

function setAttrs(el, attrs) {
  for (const [name, value] of Object.entries(attrs || {})) {
    if (value === null || value === undefined || value === false) continue;
    if (name === "class") el.setAttribute("class", value);
    else if (name.startsWith("on")) el.addEventListener(name.slice(2), value);
    else el.setAttribute(name, value === true ? "" : String(value));
  }
}

function append(el, children) {
  for (const child of children.flat()) {
    if (child === null || child === undefined || child === false) continue;
    el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
}

function replace(el, ...children) {
  el.replaceChildren();
  append(el, children);
}

const fmt = new Intl.NumberFormat("en-US");
const num = (n) => (n === null || n === undefined ? "–" : fmt.format(n));
const rate = (r) => (r ? `${r >= 100 ? Math.round(r) : r.toFixed(1)}/s` : "0/s");
const time = (ms) => (ms ? new Date(ms).toISOString().slice(11, 19) : "–");
const when = (ms) => (ms ? new Date(ms).toISOString().replace("T", " ").slice(0, 19) + "Z" : "–");

function badge(text, kind) {
  return h("span", { class: `badge ${kind || ""}` }, text);
}

function card(title, ...children) {
  return h("section", { class: "card" }, title ? h("h2", {}, title) : null, ...children);
}

function stat(label, value, sub, id) {
  return h("div", { class: "card stat" },
    h("span", { class: "label" }, label),
    h("span", { class: "value", id: id || null }, value),
    sub ? h("span", { class: "sub" }, sub) : null);
}

function toast(text, kind) {
  const el = h("div", { class: `toast ${kind || ""}`, role: "status" }, text);
  document.body.append(el);
  setTimeout(() => el.remove(), 6000);
}

async function getJSON(url, options) {
  const response = await fetch(url, options);
  const body = await response.json().catch(() => ({}));
  if (!response.ok) throw new Error(body.error || `${response.status} ${response.statusText}`);
  return body;
}

// -- charts ------------------------------------------------------------------------------

/** A time-series line chart. series: [{name, color, points: [[t, v], ...]}] */
function lineChart(series, { height = 170, unit = "", empty = "collecting samples…" } = {}) {
  const width = 640;
  const pad = { l: 56, r: 10, t: 8, b: 22 };
  const all = series.flatMap((x) => x.points);
  const svg = s("svg", { class: "chart", viewBox: `0 0 ${width} ${height}`, preserveAspectRatio: "none",
    role: "img", "aria-label": series.map((x) => x.name).join(", ") });
  if (all.length < 2) {
    svg.append(s("text", { x: width / 2, y: height / 2, "text-anchor": "middle" }, empty));
    return svg;
  }
  const t0 = Math.min(...all.map((p) => p[0]));
  const t1 = Math.max(...all.map((p) => p[0]));
  let v0 = Math.min(0, ...all.map((p) => p[1]));
  let v1 = Math.max(...all.map((p) => p[1]));
  if (v1 === v0) v1 = v0 + 1;
  const x = (t) => pad.l + ((t - t0) / Math.max(1, t1 - t0)) * (width - pad.l - pad.r);
  const y = (v) => height - pad.b - ((v - v0) / (v1 - v0)) * (height - pad.t - pad.b);
  for (let i = 0; i <= 3; i++) {
    const v = v0 + ((v1 - v0) * i) / 3;
    svg.append(s("line", { class: "grid-line", x1: pad.l, x2: width - pad.r, y1: y(v), y2: y(v) }));
    svg.append(s("text", { x: pad.l - 6, y: y(v) + 4, "text-anchor": "end" }, compact(v) + unit));
  }
  svg.append(s("text", { x: pad.l, y: height - 5 }, time(t0)));
  svg.append(s("text", { x: width - pad.r, y: height - 5, "text-anchor": "end" }, time(t1)));
  for (const line of series) {
    if (!line.points.length) continue;
    const d = line.points.map((p, i) => `${i ? "L" : "M"}${x(p[0]).toFixed(1)},${y(p[1]).toFixed(1)}`).join("");
    svg.append(s("path", { class: "series", d, stroke: line.color, "stroke-dasharray": line.dash || null }));
  }
  return svg;
}

/** Stacked bars per time bucket. buckets: [{t, parts: {name: count}}] */
function stackedBars(buckets, colors, { height = 160, empty = "no dead letters in the last 30 minutes", money = false } = {}) {
  const width = 640;
  const pad = { l: 40, r: 8, t: 8, b: 22 };
  const svg = s("svg", { class: "chart", viewBox: `0 0 ${width} ${height}`, preserveAspectRatio: "none", role: "img" });
  if (!buckets.length) {
    svg.append(s("text", { x: width / 2, y: height / 2, "text-anchor": "middle" }, empty));
    return svg;
  }
  const totals = buckets.map((b) => Object.values(b.parts).reduce((a, c) => a + c, 0));
  const top = Math.max(1, ...totals);
  const slot = (width - pad.l - pad.r) / buckets.length;
  const y = (v) => ((height - pad.t - pad.b) * v) / top;
  for (let i = 0; i <= 2; i++) {
    const v = (top * i) / 2;
    const yy = height - pad.b - y(v);
    svg.append(s("line", { class: "grid-line", x1: pad.l, x2: width - pad.r, y1: yy, y2: yy }));
    svg.append(s("text", { x: pad.l - 6, y: yy + 4, "text-anchor": "end" }, compact(v)));
  }
  buckets.forEach((bucket, i) => {
    let base = height - pad.b;
    for (const [name, count] of Object.entries(bucket.parts)) {
      const hgt = y(count);
      base -= hgt;
      svg.append(s("rect", { x: pad.l + i * slot + 1, y: base, width: Math.max(1, slot - 2), height: hgt,
        fill: colors[name] || "#4fb3ff", rx: 2 }, s("title", {}, `${time(bucket.t)} ${name}: ${money ? count.toFixed(2) : count}`)));
    }
  });
  svg.append(s("text", { x: pad.l, y: height - 5 }, time(buckets[0].t)));
  svg.append(s("text", { x: width - pad.r, y: height - 5, "text-anchor": "end" }, time(buckets[buckets.length - 1].t)));
  return svg;
}

function legend(entries) {
  return h("div", { class: "legend" }, entries.map(([name, color]) => h("span", {}, h("i", { style: `background:${color}` }), name)));
}

function bars(rows, { color = "#4fb3ff", attr = "data-name" } = {}) {
  const top = Math.max(1, ...rows.map((r) => r.value));
  return h("div", { class: "bars" }, rows.map((r) =>
    h("div", { class: "bar-row", [attr]: r.key || r.name },
      h("span", { class: "name", title: r.name }, r.name),
      h("span", { class: "track" }, h("span", { class: "fill", style: `width:${(100 * r.value) / top}%;background:${r.color || color}` })),
      h("span", { class: "count" }, r.label || num(r.value)))));
}

function compact(v) {
  const a = Math.abs(v);
  if (a >= 1e6) return (v / 1e6).toFixed(1) + "M";
  if (a >= 1e4) return (v / 1e3).toFixed(0) + "k";
  if (a >= 1e3) return (v / 1e3).toFixed(1) + "k";
  return Number.isInteger(v) ? String(v) : v.toFixed(1);
}

// -- live connection -----------------------------------------------------------------------

const state = { history: [], latest: null, page: document.body.dataset.page, onSample: null };

function setLive(kind, text) {
  const live = document.getElementById("live");
  live.dataset.state = kind;
  document.getElementById("live-text").textContent = text;
}

function connectPipeline() {
  const source = new EventSource("/api/stream");
  source.addEventListener("history", (e) => {
    state.history = JSON.parse(e.data);
  });
  source.addEventListener("sample", (e) => {
    const sample = JSON.parse(e.data);
    state.latest = sample;
    const last = state.history[state.history.length - 1];
    if (!last || last.t !== sample.t) {
      state.history.push({ t: sample.t, topics: sample.topics || [], groups: (sample.groups || []).map((g) => ({
        group: g.group, rate: g.rate, partitions: g.partitions.map((p) => [p.partition, p.end, p.committed, p.db]) })) });
      if (state.history.length > MAX_HISTORY) state.history.shift();
    }
    const trouble = (sample.errors || []).length;
    setLive(trouble ? "down" : "live", trouble ? `sample problem · ${time(sample.t)}` : `live · ${time(sample.t)}`);
    if (state.onSample) state.onSample(sample);
  });
  source.onerror = () => setLive("down", "reconnecting…");
}

// -- pages --------------------------------------------------------------------------------

const main = document.getElementById("main");

function pageHead(title, subtitle, extra) {
  return h("div", { class: "page-head" }, h("div", {}, h("h1", {}, title), h("p", { class: "muted" }, subtitle)), extra || null);
}

function errorsOf(sample) {
  const problems = (sample.errors || []).map((e) => h("div", { class: "problem" }, e));
  if (sample.database && sample.database !== "ok") problems.push(h("div", { class: "warning" }, `database: ${sample.database}`));
  return problems;
}

// pipeline ---------------------------------------------------------------------------------

function pipelinePage() {
  const tiles = h("div", { class: "grid cols-4", id: "tiles" });
  const picture = h("div", { id: "picture" });
  const notes = h("div", { id: "notes" });
  replace(main, pageHead("Pipeline", "Producers → topics → consumer groups → tables, sampled live."),
    notes, tiles, h("section", { class: "card", style: "margin-top:16px" }, h("h2", {}, "Flow"), picture));
  state.onSample = (sample) => {
    replace(notes, errorsOf(sample));
    const topics = sample.topics || [];
    const events = topics.filter((t) => !t.name.endsWith(".dlq"));
    const dlqs = topics.filter((t) => t.name.endsWith(".dlq"));
    const groups = sample.groups || [];
    replace(tiles,
      stat("events in topics", num(events.reduce((a, t) => a + t.messages, 0)), `${rate(events.reduce((a, t) => a + (t.rate || 0), 0))} in`),
      stat("applied by groups", rate(groups.reduce((a, g) => a + (g.rate || 0), 0)), `${groups.length} groups`),
      stat("total lag", num(groups.reduce((a, g) => a + (g.lag || 0), 0)), groups.some((g) => g.disagreements) ? "⚠ Kafka and database disagree" : "end − database offset"),
      stat("dead letters", num(dlqs.reduce((a, t) => a + t.messages, 0)), `${num(sample.redriven || 0)} redriven`));
    replace(picture, pipelinePicture(sample));
  };
}

function pipelinePicture(sample) {
  const topics = (sample.topics || []).filter((t) => !t.name.endsWith(".dlq"));
  const dlqs = (sample.topics || []).filter((t) => t.name.endsWith(".dlq"));
  const groups = sample.groups || [];
  const tables = sample.tables || {};
  const W = 1180, rowH = 96, boxW = 220, boxH = 64;
  const cols = [20, 320, 620, 930];
  const rows = Math.max(3, topics.length + dlqs.length);
  const H = rows * rowH + 40;
  const svg = s("svg", { class: "pipeline", viewBox: `0 0 ${W} ${H}`, role: "img", "aria-label": "pipeline" });
  ["producers", "topics", "consumer groups", "tables"].forEach((name, i) =>
    svg.append(s("text", { class: "col", x: cols[i], y: 16 }, name)));
  const pos = {};
  const node = (kind, id, col, row, title, meta, rateText, warn, moving) => {
    const x = cols[col], y = 30 + row * rowH;
    pos[id] = { x, y };
    svg.append(s("g", { class: `node ${kind}${warn ? " warn" : ""}`, "data-node": id },
      s("rect", { x, y, width: boxW, height: boxH, rx: 9 }),
      s("text", { class: "title", x: x + 12, y: y + 22 }, title),
      s("text", { class: "meta", x: x + 12, y: y + 40 }, meta),
      rateText ? s("text", { class: moving ? "rate" : "meta", x: x + 12, y: y + 56 }, rateText) : null));
  };
  const edge = (a, b, flowing, kind) => {
    const p = pos[a], q = pos[b];
    if (!p || !q) return;
    const x1 = p.x + boxW, y1 = p.y + boxH / 2, x2 = q.x, y2 = q.y + boxH / 2;
    const mid = (x1 + x2) / 2;
    svg.insertBefore(s("path", { class: `edge${flowing ? " flowing" : ""}${kind ? " " + kind : ""}`,
      d: `M${x1},${y1} C${mid},${y1} ${mid},${y2} ${x2},${y2}` }), svg.firstChild);
  };
  topics.forEach((t, i) => {
    const producer = t.name.replace("-events", "") + " producers";
    node("producer", `p:${t.name}`, 0, i, producer, "simulator · services · produce", null);
    node("topic", `t:${t.name}`, 1, i, t.name, `${num(t.messages)} events · ${t.partitions} partitions`, `${rate(t.rate)} in`, false, t.rate > 0);
    edge(`p:${t.name}`, `t:${t.name}`, t.rate > 0);
  });
  dlqs.forEach((t, i) => {
    node("dlq", `t:${t.name}`, 1, topics.length + i, t.name, `${num(t.messages)} dead letters`, t.rate ? `${rate(t.rate)} in` : null, false, t.rate > 0);
  });
  let tableRow = 0;
  groups.forEach((g, i) => {
    const warn = g.disagreements > 0;
    node("group", `g:${g.group}`, 2, i, g.group, `${g.state.toLowerCase()} · ${g.members} member(s) · lag ${num(g.lag)}`,
      `${rate(g.rate)} applied${warn ? " · ⚠ Kafka ≠ DB" : ""}`, warn, g.rate > 0);
    edge(`t:${g.topic}`, `g:${g.group}`, g.rate > 0);
    const dlq = `t:${g.topic}.dlq`;
    if (pos[dlq]) edge(`g:${g.group}`, dlq, false, "dlq");
    for (const table of g.tables) {
      if (!pos[`d:${table}`]) {
        node("table", `d:${table}`, 3, tableRow++, table, `${num(tables[table])} rows`, null);
      }
      edge(`g:${g.group}`, `d:${table}`, g.rate > 0);
    }
  });
  // a DLQ edge goes right to left: draw it as a plain curve from the group to the DLQ box
  svg.querySelectorAll("path.edge.dlq").forEach((path) => path.remove());
  groups.forEach((g) => {
    const p = pos[`g:${g.group}`], q = pos[`t:${g.topic}.dlq`];
    if (!p || !q) return;
    const x1 = p.x, y1 = p.y + boxH / 2 + 14, x2 = q.x + boxW, y2 = q.y + boxH / 2;
    svg.insertBefore(s("path", { class: "edge dlq", d: `M${x1},${y1} C${x1 - 60},${y1} ${x2 + 60},${y2} ${x2},${y2}` }), svg.firstChild);
  });
  return svg;
}

// lag ------------------------------------------------------------------------------------------

function lagPage() {
  const body = h("div", { class: "grid", id: "lag" });
  replace(main, pageHead("Lag", "Per group and partition: end offset, offset committed to Kafka, offset in the database."), body);
  state.onSample = (sample) => {
    const blocks = [...errorsOf(sample)];
    for (const group of sample.groups || []) blocks.push(lagCard(group));
    replace(body, blocks);
  };
}

function lagCard(group) {
  const history = state.history.map((entry) => [entry.t, (entry.groups || []).find((g) => g.group === group.group)]).filter((x) => x[1]);
  const sum = (parts, i) => parts.reduce((a, p) => a + (p[i] || 0), 0);
  const offsets = [
    { name: "end offset", color: PALETTE[0], points: history.map(([t, g]) => [t, sum(g.partitions, 1)]) },
    { name: "Kafka committed", color: PALETTE[2], dash: "5 4", points: history.map(([t, g]) => [t, sum(g.partitions, 2)]) },
    { name: "database", color: PALETTE[1], points: history.map(([t, g]) => [t, sum(g.partitions, 3)]) },
  ];
  const partitions = group.partitions.map((p) => p.partition);
  const lagSeries = partitions.map((pid, i) => ({
    name: `p${pid}`, color: PALETTE[i % PALETTE.length],
    points: history.map(([t, g]) => {
      const row = g.partitions.find((x) => x[0] === pid);
      return [t, row ? Math.max(0, row[1] - (row[3] || 0)) : 0];
    }),
  }));
  const warn = group.disagreements > 0;
  const rows = group.partitions.map((p) => h("tr", { "data-partition": p.partition, class: p.disagree ? "disagree" : null },
    h("td", {}, `p${p.partition}`),
    h("td", { class: "num" }, num(p.end)),
    h("td", { class: "num" }, num(p.committed)),
    h("td", { class: "num" }, num(p.db)),
    h("td", { class: "num" }, num(Math.max(0, p.end - (p.db || 0)))),
    h("td", {}, p.disagree ? badge(`Kafka ≠ DB (${num((p.committed || 0) - (p.db || 0))})`, "warn")
      : p.committed === null && p.db === null ? badge("not started") : badge("agree", "ok"))));
  return h("section", { class: "card", "data-group": group.group },
    h("div", { class: "page-head" },
      h("h2", {}, group.group, " ", h("span", { class: "muted" }, `← ${group.topic}`)),
      h("div", {}, badge(group.state.toLowerCase(), group.state === "STABLE" ? "ok" : ""), " ",
        badge(`lag ${num(group.lag)}`, group.lag ? "info" : "ok"), " ", badge(`${rate(group.rate)} applied`))),
    warn ? h("div", { class: "warning" }, `Kafka's committed offsets and the database's differ on ${group.disagreements} partition(s) for more than 10 s: the database is the truth the group resumes from; Kafka's offsets are what other tools show.`) : null,
    h("div", { class: "grid cols-2" },
      h("div", {}, h("h3", {}, "offsets (sum over partitions)"), lineChart(offsets), legend(offsets.map((x) => [x.name, x.color]))),
      h("div", {}, h("h3", {}, "lag per partition (end − database)"), lineChart(lagSeries), legend(lagSeries.map((x) => [x.name, x.color])))),
    h("table", { style: "margin-top:12px" },
      h("thead", {}, h("tr", {}, h("th", {}, "partition"), h("th", { class: "num" }, "end"), h("th", { class: "num" }, "Kafka committed"),
        h("th", { class: "num" }, "database"), h("th", { class: "num" }, "lag"), h("th", {}, "check"))),
      h("tbody", {}, rows)));
}

// shop -----------------------------------------------------------------------------------------

function shopPage() {
  const body = h("div", { id: "shop" });
  replace(main, pageHead("Shop", "From the read models: the order funnel, cancellations, revenue, products and carts."), body);
  state.onSample = (sample) => {
    const shop = sample.shop;
    if (!shop) {
      replace(body, errorsOf(sample), h("p", { class: "muted" }, "No read models yet."));
      return;
    }
    const statuses = shop.orders_by_status;
    const funnel = bars(STAGES.map((st, i) => ({ key: st, name: st, value: statuses[st] || 0, color: PALETTE[i] })), { attr: "data-status" });
    const cancelled = Object.entries(shop.cancelled_by_stage);
    const revenueRows = shop.revenue_per_minute || [];
    const currencies = [...new Set(revenueRows.map((r) => r.currency))];
    const currencyColors = Object.fromEntries(currencies.map((c, i) => [c, PALETTE[(i + 1) % PALETTE.length]]));
    const perMinute = new Map();
    for (const r of revenueRows) {
      const t = Date.parse(r.minute);
      const entry = perMinute.get(t) || { t, parts: {} };
      entry.parts[r.currency] = Number(r.revenue);
      perMinute.set(t, entry);
    }
    const revenueBuckets = fillRange([...perMinute.values()].sort((a, b) => a.t - b.t), 60000);
    const carts = shop.carts;
    replace(body,
      errorsOf(sample),
      h("div", { class: "grid cols-4" },
        stat("orders", num(Object.values(statuses).reduce((a, c) => a + c, 0)), `${num(statuses.CANCELLED || 0)} cancelled`, "orders-total"),
        ...shop.revenue.slice(0, 2).map((r) => stat(`revenue ${r.currency}`, Number(r.revenue).toLocaleString("en-US", { minimumFractionDigits: 2 }), `${num(r.units_sold)} units · ${r.revenue_cancelled} cancelled`)),
        stat("abandoned carts", num(carts.abandoned), `${num(carts.active)} active · ${num(carts.checked_out)} checked out`, "carts-abandoned")),
      h("div", { class: "grid cols-2", style: "margin-top:16px" },
        card("Order funnel (current status)", h("div", { id: "funnel" }, funnel),
          h("div", { style: "margin-top:10px" }, bars([{ key: "CANCELLED", name: "CANCELLED", value: statuses.CANCELLED || 0, color: "#ff6b6b" }], { attr: "data-status" }))),
        card("Cancellations by stage", cancelled.length
          ? bars(cancelled.map(([stage, n]) => ({ key: stage, name: `from ${stage}`, value: n, color: "#ff6b6b" })), { attr: "data-stage" })
          : h("p", { class: "muted" }, "No cancellations.")),
        card("Revenue per minute (orders paid and not cancelled, by paid_at; the 30 minutes up to the latest payment)",
          stackedBars(revenueBuckets, currencyColors, { empty: "no paid orders yet", money: true }), legend(currencies.map((c) => [c, currencyColors[c]]))),
        card("Top products (net revenue)", productTable(shop.top_products)),
        h("div", { class: "span-2" }, card(`Abandoned carts (idle 30 min, as of ${shop.as_of ? shop.as_of.slice(0, 19).replace("T", " ") : "–"})`, abandonedTable(carts)))));
  };
}

function productTable(products) {
  if (!products.length) return h("p", { class: "muted" }, "No sales yet.");
  const top = Math.max(...products.map((p) => Number(p.revenue)), 1);
  return h("table", {},
    h("thead", {}, h("tr", {}, h("th", {}, "sku"), h("th", { class: "num" }, "units"), h("th", { class: "num" }, "orders"), h("th", { class: "num" }, "revenue"), h("th", {}, ""))),
    h("tbody", {}, products.map((p) => h("tr", {},
      h("td", { class: "mono" }, p.sku), h("td", { class: "num" }, num(p.units_sold)), h("td", { class: "num" }, num(p.orders)),
      h("td", { class: "num" }, `${p.revenue} ${p.currency}`),
      h("td", { style: "width:30%" }, h("div", { class: "bar-row", style: "grid-template-columns:1fr" },
        h("span", { class: "track" }, h("span", { class: "fill", style: `width:${(100 * Number(p.revenue)) / top}%;background:#3fcf8e` }))))))));
}

function abandonedTable(carts) {
  if (!carts.abandoned_latest.length) return h("p", { class: "muted" }, "No abandoned carts.");
  return h("table", {},
    h("thead", {}, h("tr", {}, h("th", {}, "cart"), h("th", {}, "customer"), h("th", { class: "num" }, "items"), h("th", { class: "num" }, "subtotal"), h("th", {}, "last activity"))),
    h("tbody", {}, carts.abandoned_latest.map((c) => h("tr", {},
      h("td", { class: "mono" }, c.cart_id), h("td", { class: "mono" }, c.customer_id), h("td", { class: "num" }, num(c.items)),
      h("td", { class: "num" }, `${c.subtotal} ${c.currency || ""}`), h("td", {}, c.last_activity_at.slice(0, 19).replace("T", " "))))));
}

// dead letters -----------------------------------------------------------------------------------

function deadLettersPage() {
  const key = new URLSearchParams(location.search).get("key") || "";
  const overview = h("div", { id: "dlq-overview" });
  const latest = h("section", { class: "card flush", id: "dlq-latest" }, h("h2", {}, "Latest dead letters"), h("p", { class: "muted", style: "padding:0 16px" }, "Loading…"));
  const input = h("input", { type: "text", name: "key", value: key, placeholder: "filter by key (order or cart id)", autocomplete: "off" });
  const filter = h("form", { class: "search", method: "get", action: "/dead-letters" }, input,
    h("button", { class: "btn", type: "submit" }, "Filter"), key ? h("a", { class: "btn ghost", href: "/dead-letters" }, "Clear") : null);
  replace(main, pageHead("Dead letters", "Events a group refused, by topic, group and reason; each one decoded, and redrivable.", filter), overview, latest);
  let seenTotal = "";
  const open = new Set();
  const load = async () => {
    try {
      const query = key ? `limit=50&key=${encodeURIComponent(key)}` : "limit=20";
      const data = await getJSON(`/api/dead-letters?${query}`);
      renderLetters(latest, data.letters, open, load);
    } catch (err) {
      replace(latest, h("h2", {}, "Latest dead letters"), h("div", { class: "problem" }, String(err.message)));
    }
  };
  state.onSample = (sample) => {
    const dl = sample.dead_letters || { buckets: [], totals: [] };
    const reasons = [...new Set(dl.totals.map((t) => t.reason))];
    const colors = Object.fromEntries(reasons.map((r, i) => [r, PALETTE[(i + 2) % PALETTE.length]]));
    const byMinute = new Map();
    for (const b of dl.buckets) {
      const entry = byMinute.get(b.t) || { t: b.t, parts: {} };
      entry.parts[b.reason] = (entry.parts[b.reason] || 0) + b.count;
      byMinute.set(b.t, entry);
    }
    const buckets = fillMinutes([...byMinute.values()].sort((a, b) => a.t - b.t), dl.bucket_ms || 60000);
    const total = dl.totals.reduce((a, t) => a + t.count, 0);
    replace(overview, errorsOf(sample), h("div", { class: "grid cols-2" },
      card("Per minute, by reason", stackedBars(buckets, colors), legend(reasons.map((r) => [r, colors[r]]))),
      h("section", { class: "card flush" }, h("h2", {}, `By topic, group and reason (${num(total)})`),
        dl.totals.length ? h("table", { id: "dlq-totals" },
          h("thead", {}, h("tr", {}, h("th", {}, "topic"), h("th", {}, "group"), h("th", {}, "reason"), h("th", { class: "num" }, "letters"))),
          h("tbody", {}, dl.totals.map((t) => h("tr", {}, h("td", {}, t.topic), h("td", {}, t.group),
            h("td", {}, badge(t.reason, "bad")), h("td", { class: "num" }, num(t.count))))))
          : h("p", { class: "muted", style: "padding:0 16px 12px" }, "No dead letters. Every event was applied."))));
    const seen = `${total}/${sample.redriven || 0}`;
    if (seen !== seenTotal) {
      seenTotal = seen;
      load();
    }
  };
}

function fillMinutes(buckets, step) {
  return fillRange(buckets, step, Math.floor(Date.now() / step) * step);
}

/** 30 buckets ending at the last one (or at ``until``), the missing ones empty. */
function fillRange(buckets, step, until) {
  if (!buckets.length) return buckets;
  const out = [];
  const end = Math.max(buckets[buckets.length - 1].t, until || 0);
  const start = Math.min(buckets[0].t, end - 29 * step);
  const known = new Map(buckets.map((b) => [b.t, b]));
  for (let t = start; t <= end; t += step) out.push(known.get(t) || { t, parts: {} });
  return out.slice(-30);
}

function renderLetters(container, letters, open, reload) {
  const rows = [];
  for (const letter of letters) {
    const id = `${letter.topic}:${letter.partition}:${letter.offset}`;
    const row = h("tr", { class: "clickable", "data-letter": id, onclick: () => { open.has(id) ? open.delete(id) : open.add(id); renderLetters(container, letters, open, reload); } },
      h("td", {}, when(letter.timestamp_ms)),
      h("td", { class: "mono" }, `${letter.topic} ${letter.partition}:${letter.offset}`),
      h("td", {}, letter.group || "–"),
      h("td", {}, badge(letter.reason, "bad")),
      h("td", {}, letter.event_type || "–"),
      h("td", { class: "mono" }, letter.key ? h("a", { href: letter.topic.startsWith("order") ? `/orders/${encodeURIComponent(letter.key)}` : null }, letter.key) : "–"),
      h("td", {}, letter.redriven
        ? badge(`redriven → ${letter.redriven.partition}@${letter.redriven.offset}`, "ok")
        : h("button", { class: "btn danger", type: "button", "data-redrive": id,
          onclick: (e) => { e.stopPropagation(); confirmRedrive(letter, reload); } }, "Redrive…")));
    rows.push(row);
    if (open.has(id)) rows.push(h("tr", { class: "detail" }, h("td", { colspan: 7 }, letterDetail(letter))));
  }
  const filtered = new URLSearchParams(location.search).get("key");
  replace(container, h("h2", {}, filtered ? `Dead letters of ${filtered} (${letters.length})` : `Latest dead letters (${letters.length})`),
    letters.length ? h("table", {},
      h("thead", {}, h("tr", {}, h("th", {}, "dead-lettered"), h("th", {}, "where"), h("th", {}, "group"), h("th", {}, "reason"), h("th", {}, "type"), h("th", {}, "key"), h("th", {}, ""))),
      h("tbody", {}, rows)) : h("p", { class: "muted", style: "padding:0 16px 12px" }, "None."));
}

function letterDetail(letter) {
  const original = letter.original || {};
  return h("div", { class: "grid cols-2" },
    h("div", {},
      h("h3", {}, "why"),
      h("div", { class: "problem" }, `${letter.reason}: ${letter.error || "(no detail)"}`),
      h("dl", { class: "kv" },
        h("dt", {}, "group"), h("dd", {}, letter.group || "–"),
        h("dt", {}, "original"), h("dd", {}, `${original.topic}:${original.partition}@${original.offset}`),
        h("dt", {}, "event id"), h("dd", {}, letter.event_id || "–"),
        h("dt", {}, "schema"), h("dd", {}, letter.subject ? `${letter.subject} v${letter.version} (id ${letter.schema_id})` : "–")),
      h("h3", { style: "margin-top:12px" }, "headers"),
      h("pre", { class: "json" }, JSON.stringify(letter.headers, null, 2))),
    h("div", {},
      letter.decode_error
        ? [h("h3", {}, "raw bytes (does not decode)"), h("div", { class: "problem" }, `${letter.decode_error.reason}: ${letter.decode_error.detail}`), h("pre", { class: "json" }, letter.raw || "")]
        : [h("h3", {}, "decoded event"), h("pre", { class: "json" }, JSON.stringify(letter.event, null, 2))]));
}

function confirmRedrive(letter, done) {
  const modal = document.getElementById("modal");
  document.getElementById("modal-title").textContent = "Redrive this dead letter?";
  replace(document.getElementById("modal-body"),
    h("p", {}, `${letter.event_type || "The event"} for key `, h("code", {}, letter.key || "–"),
      ` goes back to `, h("code", {}, letter.original.topic || "its topic"), ` with a new event id and headers pointing at `,
      h("code", {}, `${letter.topic} ${letter.partition}:${letter.offset}`), `. Every group reading that topic sees it as a new event.`),
    h("p", { class: "muted" }, `Refused by ${letter.group} as ${letter.reason}. A letter is redriven once: a second request sends nothing.`));
  const ok = document.getElementById("modal-ok");
  const cancel = document.getElementById("modal-cancel");
  const close = () => { modal.hidden = true; ok.onclick = null; cancel.onclick = null; };
  cancel.onclick = close;
  ok.disabled = false;
  ok.onclick = async () => {
    ok.disabled = true;
    try {
      const report = await getJSON("/api/redrive", {
        method: "POST",
        headers: { "content-type": "application/json", "x-shopstream-console": "redrive" },
        body: JSON.stringify({ topic: letter.topic, partition: letter.partition, offset: letter.offset, confirm: true }),
      });
      const item = report.letters[0];
      toast(item.status === "sent" ? `Redriven as ${item.event_id} → ${item.to.topic} ${item.to.partition}@${item.to.offset}` : `Not sent: ${item.status}${item.note ? " (" + item.note + ")" : ""}`);
      close();
      if (done) done();
    } catch (err) {
      toast(`Redrive failed: ${err.message}`);
      close();
    }
  };
  modal.hidden = false;
  ok.focus();
}

// orders and one order's timeline -----------------------------------------------------------------

function ordersPage() {
  const input = h("input", { type: "text", name: "order", placeholder: "order id, e.g. order-1a2b3c", autocomplete: "off", required: true });
  replace(main, pageHead("Orders", "One order's story: its cart and order events, dead letters and its database row."),
    card("Find an order", h("form", { class: "search", onsubmit: (e) => { e.preventDefault(); location.href = `/orders/${encodeURIComponent(input.value.trim())}`; } },
      input, h("button", { class: "btn", type: "submit" }, "Show timeline")),
      h("p", { class: "muted" }, "The console hashes the id to its one partition of order-events (as the producer does) and reads only there, its cart's partition of cart-events, and their DLQs.")));
  input.focus();
}

function orderPage() {
  const orderId = decodeURIComponent(location.pathname.split("/").slice(2).join("/"));
  const body = h("div", { id: "order" }, h("p", { class: "muted" }, "Reading the order's partitions…"));
  replace(main, pageHead(`Order ${orderId}`, "Every event about it, in order, beside its row in the database.",
    h("a", { href: "/orders" }, "another order")), body);
  const seen = new Set();
  let first = true;
  const source = new EventSource(`/api/orders/${encodeURIComponent(orderId)}/stream`);
  source.addEventListener("timeline", (e) => {
    const data = JSON.parse(e.data);
    renderTimeline(body, data, seen, first);
    first = false;
    setLive("live", `live · ${time(Date.now())}`);
  });
  source.addEventListener("problem", (e) => {
    replace(body, h("div", { class: "problem", id: "order-problem" }, JSON.parse(e.data).error));
    setLive("live", `live · ${time(Date.now())}`);
  });
  source.onerror = () => setLive("down", "reconnecting…");
}

function renderTimeline(body, data, seen, first) {
  const items = data.events.map((entry) => {
    const key = `${entry.topic}:${entry.partition}:${entry.offset}`;
    const fresh = !first && !seen.has(key);
    seen.add(key);
    const isCart = entry.topic.includes("cart-events");
    const dead = entry.kind === "dead-letter";
    const pending = Object.values(entry.groups).some((o) => o === "pending");
    const chips = Object.entries(entry.groups).map(([group, outcome]) =>
      badge(`${group}: ${outcome}`, outcome === "applied" ? "ok" : outcome === "pending" ? "info" : outcome === "missing" ? "warn" : "bad"));
    return h("li", { class: [isCart ? "cart" : "", dead ? "dead" : "", pending ? "pending" : "", fresh ? "fresh" : ""].join(" "), "data-event": key,
      "data-event-id": entry.event_id || "" },
      h("div", { class: "head" },
        h("span", { class: "type" }, dead ? `dead letter · ${entry.event_type || "?"}` : entry.event_type || "undecodable"),
        h("span", { class: "where" }, `${entry.topic} p${entry.partition}@${entry.offset}`),
        h("span", { class: "when" }, when(entry.timestamp_ms))),
      h("div", { class: "where" }, `event ${entry.event_id || "–"}`),
      chips.length ? h("div", { class: "chips" }, chips) : null,
      dead && entry.dead_letter ? h("div", { class: "why" }, `${entry.dead_letter.reason} by ${entry.dead_letter.group}: ${entry.dead_letter.error || ""}`) : null,
      dead ? h("div", { style: "margin-top:6px" }, h("button", { class: "btn danger", type: "button", "data-redrive": key,
        onclick: () => confirmRedrive(timelineLetter(entry), null) }, "Redrive…")) : null,
      entry.decode_error ? h("div", { class: "why" }, `does not decode: ${entry.decode_error.reason}`) : null);
  });
  const db = data.database;
  const row = db.order;
  const change = db.last_change;
  const rowCard = card("Database row (orders)",
    row ? h("dl", { class: "kv", id: "order-row" },
      ["status", "customer_id", "total", "currency", "cart_id", "payment_id", "carrier", "tracking_number", "cancel_reason", "created_at", "updated_at", "events_applied"]
        .flatMap((name) => [h("dt", {}, name), h("dd", { "data-column": name }, row[name] === null || row[name] === undefined ? "–" : String(row[name]))]))
      : h("p", { class: "muted", id: "order-row" }, db.note || "No row in orders (yet)."),
    change ? h("div", { style: "margin-top:12px" }, h("h3", {}, "last changed by"),
      h("div", { id: "last-change" }, `${change.event_type} → ${change.to_status} at `,
        h("code", {}, change.offset !== null ? `${change.topic} p${change.partition}@${change.offset}` : "not in the topic"))) : null,
    db.offsets.length ? h("div", { style: "margin-top:12px" }, h("h3", {}, "group offsets (database)"),
      h("dl", { class: "kv" }, db.offsets.flatMap((o) => [h("dt", {}, o.group), h("dd", {}, `${o.topic} p${o.partition} next ${num(o.next_offset)}`)]))) : null);
  const verdict = data.findings.length
    ? h("div", { class: "problem", id: "verdict" }, h("strong", {}, "Topics and database disagree"), h("ul", {}, data.findings.map((f) => h("li", {}, f))))
    : h("div", { class: "good", id: "verdict" }, db.note ? `Database not read: ${db.note}` : "Topics and database agree.");
  const reads = data.reads.map((r) => `${r.topic} p${r.partition} [${num(r.from)}, ${num(r.to)})`).join(" · ");
  replace(body, verdict,
    h("div", { class: "grid cols-3" },
      h("section", { class: "card span-2" }, h("h2", {}, `Timeline (${data.events.length})`, data.cart_id ? h("span", { class: "muted" }, ` · cart ${data.cart_id}`) : null),
        items.length ? h("ul", { class: "timeline", id: "timeline" }, items) : h("p", { class: "muted" }, "No events.")),
      h("div", { class: "grid" }, rowCard,
        card("Read", h("p", { class: "muted mono", style: "margin:0" }, reads), h("p", { class: "muted", style: "margin:6px 0 0" }, `${data.seconds.toFixed(3)} s · at most the last ${num(data.window)} offsets of each partition`)))));
}

function timelineLetter(entry) {
  const letter = entry.dead_letter || {};
  return { topic: entry.topic.replace(/^.*?((cart|order)-events\.dlq)$/, "$1"), partition: entry.partition, offset: entry.offset,
    key: entry.key, event_type: entry.event_type, group: letter.group, reason: letter.reason, original: letter.original || {} };
}

// schemas ------------------------------------------------------------------------------------------

async function schemasPage() {
  const body = h("div", { id: "schemas" }, h("p", { class: "muted" }, "Asking the registry…"));
  replace(main, pageHead("Schemas", "Registry subjects (TopicRecordNameStrategy), their versions and compatibility, and the event catalog."), body);
  setLive("live", "on demand");
  try {
    const data = await getJSON("/api/schemas");
    replace(body,
      h("section", { class: "card flush" }, h("h2", {}, `Subjects (${data.subjects.length})`),
        h("table", { id: "subjects" },
          h("thead", {}, h("tr", {}, h("th", {}, "subject"), h("th", {}, "versions"), h("th", {}, "schema ids"), h("th", {}, "compatibility"))),
          h("tbody", {}, data.subjects.map((x) => h("tr", { "data-subject": x.subject },
            h("td", { class: "mono" }, x.subject), h("td", {}, x.versions.map((v) => `v${v.version}`).join(" ")),
            h("td", { class: "mono" }, x.versions.map((v) => v.id).join(", ")), h("td", {}, badge(x.compatibility || "–", "info"))))))),
      h("h2", { style: "margin:22px 0 10px" }, "Event catalog"),
      h("div", { class: "grid cols-2", id: "catalog" }, data.catalog.map((e) => h("section", { class: "card", "data-event-type": e.event_type },
        h("div", { class: "page-head", style: "margin-bottom:6px" }, h("h2", {}, e.event_type),
          h("span", {}, badge(e.topic, "info"), " ", badge(`key ${e.key}`), " ", e.registered ? badge("registered", "ok") : badge("not registered", "warn"))),
        h("p", { class: "muted", style: "margin:0 0 8px" }, e.doc),
        h("table", {}, h("tbody", {}, e.fields.map((f) => h("tr", {}, h("td", { class: "mono" }, f.name), h("td", { class: "mono muted" }, f.type), h("td", { class: "muted" }, f.doc)))))))));
  } catch (err) {
    replace(body, h("div", { class: "problem" }, String(err.message)));
  }
}

// -- start ---------------------------------------------------------------------------------------

const PAGES = { pipeline: pipelinePage, lag: lagPage, shop: shopPage, "dead-letters": deadLettersPage, orders: ordersPage, order: orderPage, schemas: schemasPage };
const LIVE_PAGES = new Set(["pipeline", "lag", "shop", "dead-letters"]);

for (const link of document.querySelectorAll("nav a")) {
  if (link.dataset.nav.split(" ").includes(state.page)) link.classList.add("active");
}
(PAGES[state.page] || pipelinePage)();
if (LIVE_PAGES.has(state.page)) connectPipeline();
else if (state.page === "orders") setLive("live", "ready");
