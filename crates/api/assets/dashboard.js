// The dashboard: reads the API with the token it is given and renders
// chains, streams, sinks, transactions and pools, refreshed every 5 s.
// Values are written with textContent only; each cell that shows a number
// carries data-k, so a test can compare what is shown with the API.
"use strict";

const COLORS = ["#3366cc", "#dc3912", "#ff9900", "#109618", "#990099", "#0099c6", "#dd4477", "#66aa00"];
let token = "";

function el(tag, attrs, text) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) e.setAttribute(k, v);
  if (text !== undefined && text !== null) e.textContent = String(text);
  return e;
}

function fill(id, head, rows) {
  const t = document.getElementById(id);
  t.replaceChildren();
  const tr = el("tr");
  for (const h of head) tr.appendChild(el("th", {}, h));
  t.appendChild(tr);
  for (const cells of rows) {
    const r = el("tr");
    for (const c of cells) {
      const attrs = {};
      if (c && c.k) attrs["data-k"] = c.k;
      if (c && c.cls) attrs["class"] = c.cls;
      r.appendChild(el("td", attrs, c && typeof c === "object" ? c.v : c));
    }
    t.appendChild(r);
  }
}

function denied(id, what) {
  const t = document.getElementById(id);
  t.replaceChildren(el("tr", {}, ""));
  t.firstChild.appendChild(el("td", { class: "denied" }, "this token may not read " + what));
}

async function get(path) {
  const r = await fetch(path, { headers: { Authorization: "Bearer " + token } });
  if (r.status === 401) throw new Error("unauthorized");
  if (r.status === 403 || r.status === 503) return null;
  if (!r.ok) throw new Error(path + ": " + r.status);
  return r.json();
}

function n(v) { return v === null || v === undefined ? "—" : v; }

// Stacked bars, one per minute, one colour per series.
function bars(id, minutes, pick) {
  const names = [...new Set(minutes.flatMap((m) => Object.keys(pick(m))))].sort();
  const max = Math.max(1, ...minutes.map((m) => Object.values(pick(m)).reduce((a, b) => a + b, 0)));
  // At least an hour wide, so one minute is one bar, not the whole chart.
  const w = 600, h = 120, bw = w / Math.max(minutes.length, 60);
  const ns = "http://www.w3.org/2000/svg";
  const svg = document.createElementNS(ns, "svg");
  svg.setAttribute("viewBox", `0 0 ${w} ${h}`);
  svg.setAttribute("preserveAspectRatio", "none");
  minutes.forEach((m, i) => {
    let y = h;
    names.forEach((name, j) => {
      const v = pick(m)[name] || 0;
      if (!v) return;
      const bh = (v / max) * (h - 4);
      y -= bh;
      const r = document.createElementNS(ns, "rect");
      r.setAttribute("x", i * bw); r.setAttribute("y", y);
      r.setAttribute("width", Math.max(bw - 1, 1)); r.setAttribute("height", bh);
      r.setAttribute("fill", COLORS[j % COLORS.length]);
      const title = document.createElementNS(ns, "title");
      title.textContent = `${new Date(m.at * 1000).toLocaleTimeString()} ${name}: ${v}`;
      r.appendChild(title);
      svg.appendChild(r);
    });
  });
  const legend = el("div", { class: "legend" });
  names.forEach((name, j) => {
    const s = el("span");
    const swatch = el("i");
    swatch.style.background = COLORS[j % COLORS.length];
    s.appendChild(swatch);
    s.appendChild(document.createTextNode(name));
    legend.appendChild(s);
  });
  document.getElementById(id).replaceChildren(svg, legend);
}

async function chains() {
  const d = await get("/v1/chains");
  if (!d) return denied("chains", "chains");
  fill("chains", ["chain", "head", "endpoints up", "worst lag"], d.chains.map((c) => {
    const up = c.endpoints.filter((e) => e.up).length;
    const lag = Math.max(0, ...c.endpoints.map((e) => e.lag || 0));
    return [c.name, { k: `chain.${c.name}.head`, v: n(c.head) },
      { k: `chain.${c.name}.up`, v: `${up}/${c.endpoints.length}`, cls: up < c.endpoints.length ? "bad" : "ok" },
      { k: `chain.${c.name}.lag`, v: lag }];
  }));
}

async function streams(stats) {
  const d = await get("/v1/streams");
  if (!d) return denied("streams", "streams");
  const last = stats ? stats.minutes[stats.minutes.length - 1] : null;
  fill("streams", ["stream", "cursor", "lag", "events", "this minute", "reorgs", "last error"], d.streams.map((s) => [
    s.name, { k: `stream.${s.name}.cursor`, v: n(s.cursor) }, { k: `stream.${s.name}.lag`, v: n(s.lag) },
    { k: `stream.${s.name}.events`, v: s.events_recorded },
    { k: `stream.${s.name}.epm`, v: last ? last.events[s.name] || 0 : "—" },
    { k: `stream.${s.name}.reorgs`, v: s.reorgs },
    { v: s.last_error || "", cls: s.last_error ? "bad" : "" }]));
  if (stats) bars("events-chart", stats.minutes.slice(-180), (m) => m.events);
}

async function sinks() {
  const d = await get("/v1/sinks");
  if (!d) return denied("sinks", "sinks");
  fill("sinks", ["sink", "stream", "cursor", "lag", "delivered", "failures", "dead letters"], d.sinks.map((s) => {
    const k = `sink.${s.sink}.${s.stream}`;
    return [s.sink, s.stream, { k: `${k}.cursor`, v: s.cursor }, { k: `${k}.lag`, v: s.lag },
      { k: `${k}.delivered`, v: s.delivered }, { k: `${k}.failures`, v: s.failures, cls: s.failures ? "bad" : "" },
      { k: `${k}.dead`, v: s.dead_letters, cls: s.dead_letters ? "bad" : "" }];
  }));
}

async function transactions(stats) {
  if (stats) {
    bars("tx-chart", stats.minutes.slice(-180), (m) => m.transactions);
    const now = stats.minutes[stats.minutes.length - 1].transactions;
    fill("txcounts", Object.keys(now), [Object.entries(now).map(([s, c]) => ({ k: `txcount.${s}`, v: c }))]);
  }
  const d = await get("/v1/transactions?limit=10");
  if (!d) return denied("txs", "transactions");
  const full = await Promise.all(d.transactions.map((t) => get(`/v1/transactions/${encodeURIComponent(t.id)}`)));
  fill("txs", ["id", "status", "from", "nonce", "attempts", "error"], full.filter(Boolean).map((t) => [
    t.id, { k: `tx.${t.id}.status`, v: t.status, cls: ["failed", "rejected"].includes(t.status) ? "bad" : "" },
    t.from, { k: `tx.${t.id}.nonce`, v: n(t.nonce) }, { k: `tx.${t.id}.attempts`, v: t.attempts.length },
    { v: t.error || "", cls: t.error ? "bad" : "" }]));
}

async function pools() {
  const d = await get("/v1/accounts");
  if (!d) return denied("pools", "accounts");
  const chainOf = Object.fromEntries(d.pools.map((p) => [p.name, p.chain]));
  const members = d.pools.flatMap((p) => p.members.map((m) => ({ pool: p, m })));
  for (const a of d.accounts) {
    if (!members.some((x) => x.m.address === a.address)) {
      members.push({ pool: { name: "—", chain: a.chain, min_balance: null, rotation: null }, m: { address: a.address, state: "", balance: null } });
    }
  }
  // The nonce on chain and the requests in flight, per account.
  const extra = await Promise.all(members.map(async ({ pool, m }) => {
    const chain = pool.chain || chainOf[pool.name];
    const onChain = await get(`/v1/chains/${encodeURIComponent(chain)}/accounts/${m.address}`).catch(() => null);
    let flight = 0;
    for (const status of ["queued", "pending"]) {
      const l = await get(`/v1/transactions?status=${status}&from=${m.address}&limit=1000`).catch(() => null);
      flight += l ? l.transactions.length : 0;
    }
    return { nonce: onChain ? onChain.nonce : null, flight };
  }));
  fill("pools", ["pool", "account", "state", "balance (wei)", "minimum", "nonce", "in flight", "rotation"], members.map(({ pool, m }, i) => {
    const k = `pool.${pool.name}.${m.address}`;
    const low = pool.min_balance && m.balance && BigInt(m.balance) < BigInt(pool.min_balance);
    return [pool.name, m.address, { k: `${k}.state`, v: m.state }, { k: `${k}.balance`, v: n(m.balance), cls: low ? "bad" : "" },
      n(pool.min_balance), { k: `${k}.nonce`, v: n(extra[i].nonce) }, { k: `${k}.flight`, v: extra[i].flight },
      pool.rotation ? `${pool.rotation.step}${pool.rotation.error ? " (stopped)" : ""}` : ""];
  }));
  const notes = d.pools.flatMap((p) => [
    ...p.alerts.map((a) => `${p.name}: ${a.message}`),
    ...(p.top_up ? [`${p.name}: topped up today ${p.topped_up_today} of ${n(p.daily_top_up_cap)} wei`] : []),
  ]);
  const box = document.getElementById("alerts");
  box.textContent = notes.join("; ");
  box.className = d.pools.some((p) => p.alerts.length) ? "bad" : "";
}

async function cluster() {
  const d = await get("/v1/cluster");
  if (!d) return denied("replicas", "the cluster");
  fill("replicas", ["replica", "api", "units", "last seen"], d.replicas.map((r) => [
    r.id, r.api, { k: `replica.${r.id}.units`, v: r.units }, `${Math.max(0, d.now_ms - r.seen_ms)} ms ago`]));
  fill("units", ["unit", "holder", "epoch", "expires in"], d.units.map((u) => [
    u.unit, { k: `unit.${u.unit}.holder`, v: n(u.holder), cls: u.holder ? "" : "bad" },
    { k: `unit.${u.unit}.epoch`, v: u.epoch },
    u.holder ? `${Math.max(0, u.expires_ms - d.now_ms)} ms` : "—"]));
}

async function refresh() {
  const status = document.getElementById("status");
  try {
    const stats = await get("/v1/stats");
    await Promise.all([chains(), streams(stats), sinks(), transactions(stats), pools(), cluster()]);
    status.textContent = "updated " + new Date().toLocaleTimeString();
    status.setAttribute("data-ready", "1");
  } catch (e) {
    status.textContent = String(e.message || e);
  }
}

function start(t) {
  token = t;
  sessionStorage.setItem("ethgate-token", t);
  document.getElementById("main").hidden = false;
  refresh();
  setInterval(refresh, 5000);
}

document.getElementById("login").addEventListener("submit", (ev) => {
  ev.preventDefault();
  start(document.getElementById("token").value.trim());
});
const fromHash = new URLSearchParams(location.hash.slice(1)).get("token");
if (fromHash) history.replaceState(null, "", location.pathname);
const saved = fromHash || sessionStorage.getItem("ethgate-token");
if (saved) start(saved);
