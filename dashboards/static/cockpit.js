// CityBrain cockpit: one page, hash-routed; every data call carries the bearer token; live push over SSE (fetch).
"use strict";
const S = { token: localStorage.getItem("cb_token") || "", lang: localStorage.getItem("cb_lang") || "zh",
            me: null, city: null, tz: "Asia/Shanghai", districts: {}, charts: {}, lastWindow: null, page: "overview",
            abort: null };
const TILE_FIELDS = [
  ["health_index", 0], ["tpi", 1], ["mean_speed_kmh", 0], ["aqi", 0], ["primary_pollutant", null],
  ["noise_laeq_db", 1], ["cases_open", 0], ["cases_overdue", 0], ["outages_active", 0], ["incidents_active", 0],
  ["sensors_fresh_share", "%"],
];
const SEV = { red: "#e02020", orange: "#ff7e00", yellow: "#f5d90a", blue: "#1e6fd9" };

const t = (k, vars) => { let s = (I18N[S.lang] || I18N.zh)[k] ?? k; for (const [a, b] of Object.entries(vars || {})) s = s.replace(`{${a}}`, b); return s; };
const $ = (sel) => document.querySelector(sel);
const esc = (v) => String(v ?? "").replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" }[c]));

function fmt(value, digits) {
  if (value === null || value === undefined || Number.isNaN(value)) return "–";
  if (digits === null) return String(value);
  if (digits === "%") return (value * 100).toFixed(0) + "%";
  return Number(value).toFixed(digits);
}
function localTime(ms) {  // the city's own local time, whatever the browser's zone
  if (!ms) return "–";
  return new Intl.DateTimeFormat(S.lang === "zh" ? "zh-CN" : "en-GB", { timeZone: S.tz, year: "numeric", month: "2-digit",
    day: "2-digit", hour: "2-digit", minute: "2-digit", hour12: false }).format(new Date(Number(ms)));
}
function localClock(ms) {  // local time with seconds: a re-timed arrival moves by seconds
  if (!ms) return "–";
  return new Intl.DateTimeFormat(S.lang === "zh" ? "zh-CN" : "en-GB", { timeZone: S.tz, hour: "2-digit", minute: "2-digit",
    second: "2-digit", hour12: false }).format(new Date(Number(ms)));
}
function toast(text) { const el = $("#toast"); el.textContent = text; el.className = ""; setTimeout(() => (el.className = "hidden"), 2500); }

async function api(path, opts = {}) {
  const r = await fetch(path, { ...opts, headers: { ...(opts.headers || {}), Authorization: `Bearer ${S.token}`,
                                                     "Content-Type": "application/json" } });
  if (r.status === 401) { showLogin(t("login_bad")); throw new Error("401"); }
  const body = r.headers.get("content-type")?.includes("json") ? await r.json() : await r.text();
  if (!r.ok) throw new Error(body?.error ? `${body.error.field}: ${body.error.message}` : `HTTP ${r.status}`);
  return body;
}
const may = (action) => !!S.me && S.me.may.includes(action);

function applyLabels() {
  document.documentElement.lang = S.lang === "zh" ? "zh-CN" : "en";
  document.querySelectorAll("[data-i18n]").forEach((el) => (el.textContent = t(el.dataset.i18n)));
  $("#lang").textContent = S.lang === "zh" ? "EN" : "中文";
}

function showLogin(msg) {
  $("#login").classList.remove("hidden"); $("#main").classList.add("hidden");
  $("#login-error").textContent = msg || "";
}

async function login() {
  try {
    S.me = await api("/api/v1/whoami");
  } catch (e) { return; }
  $("#login").classList.add("hidden"); $("#main").classList.remove("hidden");
  $("#who").textContent = `${S.me.name} · ${S.me.role}`;
  $("#who").dataset.role = S.me.role;
  S.city = await api("/api/v1/city");
  S.tz = S.city.timezone; $("#city-name").textContent = S.city.name;
  S.city.districts.forEach((d) => (S.districts[d.id] = d));
  const geo = await api("/api/v1/city/districts.geojson");
  echarts.registerMap("city", geo);
  route(); live();
}

function route() {
  S.page = (location.hash || "#overview").slice(1);
  document.querySelectorAll(".page").forEach((p) => p.classList.toggle("active", p.id === `page-${S.page}`));
  document.querySelectorAll("#nav a").forEach((a) => a.classList.toggle("active", a.dataset.page === S.page));
  const load = { overview: loadOverview, alerts: loadAlerts, traffic: loadTraffic, grid: loadGrid, sensors: loadSensors }[S.page];
  if (load) load().catch((e) => console.error(e));
}

// --- overview ---------------------------------------------------------------------------------------
async function loadOverview() {
  const latest = await api("/api/v1/vitals/district/latest");
  renderDistricts(latest.rows, latest.window_end_ms);
  await renderFeed();
  await renderLayers();
  await renderTrend(latest.window_end_ms);
}

function renderDistricts(rows, windowEnd) {
  S.lastWindow = windowEnd; $("#stream-time").textContent = localTime(windowEnd);
  $("#tiles").innerHTML = rows.map((r) => `
    <div class="tile" id="tile-${esc(r.district)}" data-district="${esc(r.district)}">
      <div class="tile-name">${esc(S.districts[r.district]?.name || r.name || r.district)}</div>
      ${TILE_FIELDS.map(([f, d]) => `<div class="kv"><span class="k">${t(f)}</span>
        <span class="val" data-field="${f}" data-value="${esc(r[f] ?? "")}">${esc(fmt(r[f], d))}</span></div>`).join("")}
    </div>`).join("");
  const chart = S.charts.map || (S.charts.map = echarts.init($("#map")));
  const values = rows.map((r) => ({ name: r.district, value: r.health_index }));
  if (S.mapReady === chart) {  // a new window: only the districts' values change (no full re-layout of the map)
    chart.setOption({ series: [{ id: "districts", data: values }] });
    return;
  }
  S.mapReady = chart;
  chart.setOption({
    tooltip: { trigger: "item", formatter: (p) => p.seriesType === "map"
      ? `${esc(S.districts[p.name]?.name || p.name)}<br>${t("health_index")}: ${fmt(p.value, 1)}` : esc(p.name) },
    geo: { map: "city", nameProperty: "id", roam: false, silent: true, itemStyle: { areaColor: "#102643", borderColor: "#335c8a" },
           label: { show: true, color: "#0b1a2e", fontWeight: "bold", formatter: (p) => (S.districts[p.name]?.name || p.name).split(" ")[0] } },
    visualMap: { min: 40, max: 100, left: 10, bottom: 10, calculable: false, seriesIndex: 0, textStyle: { color: "#dfe8f5" },
                 inRange: { color: ["#c0392b", "#e67e22", "#f1c40f", "#27ae60"] } },
    series: [{ type: "map", map: "city", nameProperty: "id", geoIndex: 0, id: "districts",
               label: { show: true, color: "#0b1a2e", formatter: (p) => (S.districts[p.name]?.name || p.name).split(" ")[0] },
               data: values }],
  });
}

// road segments by TPI level, air stations by AQI colour, firing alerts with a position: layers over the districts
const TPI_COLOUR = { 1: "#27ae60", 2: "#a3d65c", 3: "#f1c40f", 4: "#e67e22", 5: "#c0392b" };
async function renderLayers() {
  S.segments = S.segments || (await api("/api/v1/city/segments")).rows;
  S.airSensors = S.airSensors || (await api("/api/v1/sensors?type=air&limit=5000")).rows;
  const [seg, air, alerts] = await Promise.all([api("/api/v1/vitals/segment_traffic/latest").catch(() => ({ rows: [] })),
    api("/api/v1/vitals/air_station/latest").catch(() => ({ rows: [] })), api("/api/v1/alerts?status=active&limit=1000")]);
  const level = Object.fromEntries(seg.rows.map((r) => [r.segment_id, r.tpi_level]));
  const aqi = Object.fromEntries(air.rows.map((r) => [r.sensor_id, r]));
  S.charts.map.setOption({ series: [
    { id: "districts" },
    { id: "segments", type: "lines", coordinateSystem: "geo", polyline: true, silent: true, zlevel: 1,
      data: S.segments.map((s) => ({ name: s.name, coords: s.line, lineStyle: { color: TPI_COLOUR[level[s.id]] || "#567", width: 2 } })) },
    { id: "air", type: "scatter", coordinateSystem: "geo", symbolSize: 9, zlevel: 2,
      data: S.airSensors.map((s) => ({ name: `${s.id} AQI ${fmt(aqi[s.id]?.aqi, 0)}`, value: [s.lon, s.lat],
                                       itemStyle: { color: aqi[s.id]?.colour_hex || "#888", borderColor: "#000" } })) },
    { id: "alerts", type: "effectScatter", coordinateSystem: "geo", symbolSize: 12, zlevel: 3,
      data: alerts.rows.filter((a) => a.lon != null && a.lat != null).map((a) => ({ name: a.summary, value: [a.lon, a.lat],
                                       itemStyle: { color: SEV[a.colour] } })) },
  ] });
}

async function renderFeed() {
  const res = await api("/api/v1/alerts?status=active&limit=8");
  $("#feed").innerHTML = alertRows(res.rows, true) +
    (res.more ? `<div class="more" id="feed-more">${t("more", { n: res.more })}</div>` : "") +
    `<div class="count">${res.total} ${t("alerts_word")}</div>`;
}

async function renderTrend(lastMs) {
  if (!lastMs) return;
  const h = await api(`/api/v1/vitals/city/history?from_ms=${lastMs - 86400000}&columns=health_index,tpi,aqi&limit=5000`);
  const chart = S.charts.trend || (S.charts.trend = echarts.init($("#trend")));
  const xs = h.rows.map((r) => localTime(r.window_end_ms).slice(-5));
  chart.setOption({
    tooltip: { trigger: "axis" }, legend: { textStyle: { color: "#dfe8f5" } }, grid: { left: 40, right: 40, top: 30, bottom: 25 },
    xAxis: { type: "category", data: xs, axisLabel: { color: "#9ab" } },
    yAxis: [{ type: "value", axisLabel: { color: "#9ab" } }, { type: "value", max: 10, axisLabel: { color: "#9ab" } }],
    series: [{ name: t("health_index"), type: "line", showSymbol: false, data: h.rows.map((r) => r.health_index) },
             { name: "AQI", type: "line", showSymbol: false, data: h.rows.map((r) => r.aqi) },
             { name: t("tpi"), type: "line", yAxisIndex: 1, showSymbol: false, data: h.rows.map((r) => r.tpi) }],
  });
}

function alertRows(rows, compact) {
  if (!rows.length) return `<div class="empty">${t("none")}</div>`;
  return rows.map((a) => {
    const where = ["district", "street", "cell", "segment_id", "sensor_id"].map((k) => a.labels[k]).filter(Boolean)
      .map((v, i) => (i === 0 && S.districts[v] ? S.districts[v].name : v)).join(" / ");
    const buttons = a.status === "firing"
      ? (may("ack") ? `<button class="ack" data-fp="${esc(a.fingerprint)}">${t("ack")}</button>` : "") +
        (may("silence") ? `<button class="silence" data-fp="${esc(a.fingerprint)}" data-district="${esc(a.labels.district || "")}" data-rule="${esc(a.rule_id)}">${t("silence")}</button>` : "")
      : a.status === "acknowledged" && may("ack") ? `<button class="unack" data-fp="${esc(a.fingerprint)}">${t("unack")}</button>` : "";
    const ev = compact ? "" : `<div class="evidence">${t("evidence")}: ${esc(Object.entries(a.evidence || {}).map(([k, v]) => `${k}=${v}`).join(", "))}</div>`;
    return `<div class="alert sev-${a.colour}" data-fp="${esc(a.fingerprint)}" data-status="${a.status}">
      <span class="badge" style="background:${SEV[a.colour]}">${t("sev_" + a.colour)}</span>
      <span class="status">${t("status_" + a.status)}${a.acked_by ? " · " + esc(a.acked_by) : ""}</span>
      <div class="summary">${esc(a.summary)}</div>
      <div class="meta">${esc(where)} · ${t("tier")} ${esc(a.tier)} · ${t("since")} ${localTime(a.fired_ms || a.started_ms)}</div>
      ${ev}<div class="actions">${buttons}</div></div>`;
  }).join("");
}

// --- alerts page ------------------------------------------------------------------------------------
async function loadAlerts() {
  const inc = await api("/api/v1/incidents");
  const all = await api("/api/v1/alerts?status=active&limit=1000");
  const byInc = {};
  all.rows.forEach((a) => (byInc[a.incident] = byInc[a.incident] || []).push(a));
  $("#alerts-list").innerHTML = `<div class="count">${inc.total} ${t("incidents")} · ${all.total} ${t("alerts_word")}</div>` +
    inc.rows.map((g) => `<div class="incident"><h4>${esc(g.lead.summary)} <small>(${g.alerts})</small></h4>
      ${alertRows(byInc[g.incident] || [g.lead], false)}</div>`).join("");
  const sil = await api("/api/v1/silences");
  $("#silences").innerHTML = table(sil.rows.filter((s) => s.active), ["id", "matchers", "created_by", "comment"],
    (s) => (may("silence") ? `<button class="expire" data-id="${esc(s.id)}">${t("expire")}</button>` : ""));
}

function table(rows, cols, extra) {
  if (!rows.length) return `<div class="empty">${t("none")}</div>`;
  return `<table><thead><tr>${cols.map((c) => `<th>${esc(t(c))}</th>`).join("")}${extra ? "<th></th>" : ""}</tr></thead><tbody>` +
    rows.map((r) => `<tr>${cols.map((c) => `<td>${esc(Array.isArray(r[c]) ? r[c].join(", ") : typeof r[c] === "number" && !Number.isInteger(r[c]) ? r[c].toFixed(2) : r[c] ?? "–")}</td>`).join("")}${extra ? `<td>${extra(r)}</td>` : ""}</tr>`).join("") +
    "</tbody></table>";
}

// --- traffic, grid, sensors -------------------------------------------------------------------------
async function loadTraffic() {
  const plans = await api("/api/v1/plans");
  $("#corridors").innerHTML = plans.rows.map((p) => `<div class="panel corridor" id="corridor-${esc(p.corridor)}">
      <h3>${esc(p.name)} <small>${esc(p.plan?.plan_id || t("none"))}</small></h3>
      <div class="kv"><span class="k">${t("plan")}</span><span>${p.plan ? `${t("cycle")} ${p.plan.cycle_s} · ${localTime(p.plan.valid_from_ms)}` : "–"}</span></div>
      <div class="diagram" data-corridor="${esc(p.corridor)}"></div><div class="plan-history" data-corridor="${esc(p.corridor)}"></div></div>`).join("");
  for (const p of plans.rows) {
    if (!p.plan) continue;
    const r = await fetch(`/api/v1/plans/${encodeURIComponent(p.corridor)}/diagram.svg`, { headers: { Authorization: `Bearer ${S.token}` } });
    if (r.ok) document.querySelector(`.diagram[data-corridor="${p.corridor}"]`).innerHTML = await r.text();
    const h = await api(`/api/v1/plans/${encodeURIComponent(p.corridor)}/history?limit=5`);
    document.querySelector(`.plan-history[data-corridor="${p.corridor}"]`).innerHTML =
      `<h4>${t("history")}</h4>` + table(h.rows.map((x) => ({ ...x, valid_from: localTime(x.valid_from_ms) })), ["plan_id", "valid_from", "cycle_s"]);
  }
  await loadControllers();
}

// signal controllers (plans sent / acknowledged / what they report) and priority requests (一键护航)
async function loadControllers() {
  const [ctl, prio] = await Promise.all([api("/api/v1/plans/controllers"), api("/api/v1/plans/priority?limit=20")]);
  const yes = (v) => (v ? "✓" : "✗");
  $("#controllers").innerHTML = (ctl.hub ? "" : `<div class="note">${t("no_hub")}</div>`) +
    table(ctl.rows.map((r) => ({ ...r, acknowledged: r.plan_id ? (r.rejected ? `✗ ${r.rejected}` : yes(r.acknowledged)) : "–",
      phase_time_s: r.phase_time_s == null ? null : Math.round(r.phase_time_s),
      status_at: r.status_ts_ms ? localTime(r.status_ts_ms) : null, status_refused: r.status_refused })),
          ["corridor", "intersection", "plan_id", "acknowledged", "running_plan_id", "phase", "phase_time_s", "mode",
           "detector_faults", "status_at", "status_refused"]);
  $("#priority").innerHTML = table(prio.rows.map((r) => ({ ...r, eta_s: r.eta_s,
    hub: `${r.hub.status}${r.hub.action ? " · " + r.hub.action : ""}${r.hub.cross_delay_s ? ` · ${r.hub.cross_delay_s} s` : ""}${r.hub.reason ? " · " + r.hub.reason : ""}`,
    controller: r.controller.map((c) => `${c.status}${c.reason ? ": " + c.reason : ""}`).join(" → ") || "–" })),
    ["corridor", "intersection", "vehicle_id", "escort_id", "eta_s", "requested_by", "hub", "controller"]);
  const form = $("#priority-form");
  form.classList.toggle("hidden", !may("priority"));
  $("#escort-form").classList.toggle("hidden", !may("priority"));
  if (may("priority") && !S.prioReady) {
    S.prioReady = true;
    const scope = (S.me.scope || "").split(",").map((x) => x.trim()).filter(Boolean);
    const corridors = (S.city.corridors || []).filter((c) => S.me.role !== "controller" || !scope.length || scope.includes(c.id));
    $("#prio-corridor").innerHTML = corridors.map((c) => `<option value="${esc(c.id)}">${esc(c.name)}</option>`).join("");
    const fill = () => { const ids = [...new Set(ctl.rows.filter((r) => r.corridor === $("#prio-corridor").value).map((r) => r.intersection))];
      $("#prio-intersection").innerHTML = ids.map((i) => `<option>${esc(i)}</option>`).join(""); };
    $("#prio-corridor").addEventListener("change", fill); fill();
    // an escort along a route across corridors (POST /api/v1/plans/escort): one request per signal on it
    const sigs = [...new Set(ctl.rows.map((r) => r.intersection))];
    const opts = sigs.map((i) => `<option>${esc(i)}</option>`).join("");
    $("#esc-origin").innerHTML = opts; $("#esc-destination").innerHTML = opts;
    $("#esc-destination").value = sigs[sigs.length - 1] || "";
    $("#escort-form").addEventListener("submit", async (e) => {
      e.preventDefault();
      try {
        const via = $("#esc-via").value.split(",").map((x) => x.trim()).filter(Boolean);
        const r = await api("/api/v1/plans/escort", { method: "POST", body: JSON.stringify({
          origin: $("#esc-origin").value, destination: $("#esc-destination").value, via, kind: $("#esc-kind").value,
          vehicle_id: $("#esc-vehicle").value || "AMB-1", speed_kmh: Number($("#esc-speed").value), start_in_s: Number($("#esc-start").value),
          follow: $("#esc-follow").checked }) });
        S.escort = r.escort_id; renderEscort(r);
        toast(t("priority_sent")); setTimeout(() => loadControllers().catch(() => {}), 1500);
        // a followed escort runs as long as the vehicle reports (the hub ends it on arrival, cancel or lost positions)
        followEscort(r.escort_id, r.follow ? Date.now() + 4 * 3600e3 : Date.now() + (Math.max(0, ...Object.values(r.eta_s)) + 90) * 1000);
      } catch (err) { toast(err.message); }
    });
    form.addEventListener("submit", async (e) => {
      e.preventDefault();
      try {
        await api(`/api/v1/plans/${encodeURIComponent($("#prio-corridor").value)}/priority`, { method: "POST", body: JSON.stringify({
          intersection: $("#prio-intersection").value, eta_s: Number($("#prio-eta").value), vehicle_id: $("#prio-vehicle").value || "AMB-1",
          kind: $("#prio-kind").value, direction: $("#prio-direction").value }) });
        toast(t("priority_sent")); setTimeout(() => loadControllers().catch(() => {}), 1500);
      } catch (err) { toast(err.message); }
    });
  }
}

// one escort: its route, legs and each signal's state (unplanned / queued / hub's answer / controller's report)
function renderEscort(r) {
  if (r.follow) return renderFollowed(r);
  const sig = r.signals || r.route.map((i) => ({ intersection: i, corridor: null, state: r.unplanned.includes(i) ? "unplanned" : "queued" }));
  const eta = r.eta_s || Object.fromEntries(sig.map((x) => [x.intersection, x.eta_s]));
  $("#escort-result").innerHTML = `<div class="kv" data-escort="${esc(r.escort_id)}"><span class="k">${t("escort_route")}</span><span>${esc(r.route.join(" → "))}</span></div>` +
    `<div class="kv"><span class="k">${t("escort_legs")}</span><span>${r.legs.map((l) => `${esc(l.corridor)} ${esc(l.signals[0])}..${esc(l.signals[l.signals.length - 1])} (${esc(l.direction)})`).join(" · ")}</span></div>` +
    (r.unplanned.length ? `<div class="kv"><span class="k">${t("escort_unplanned")}</span><span>${esc(r.unplanned.join(", "))}</span></div>` : "") +
    `<div id="escort-signals">` + table(sig.map((x) => ({ intersection: x.intersection, corridor: x.corridor || "–", direction: x.direction || "–",
      arrival: localTime(r.ts_ms + 1000 * (eta[x.intersection] ?? 0)), state: t(`st_${x.state}`),
      hub: x.hub ? `${x.hub.action || ""}${x.hub.cross_delay_s ? ` · ${x.hub.cross_delay_s} s` : ""}${x.hub.reason ? " · " + x.hub.reason : ""}` : "–",
      controller: (x.controller || []).map((c) => `${c.status}${c.reason ? ": " + c.reason : ""}`).join(" → ") || "–" })),
      ["intersection", "corridor", "direction", "arrival", "state", "hub", "controller"]) + `</div>`;
  document.querySelectorAll("#escort-signals tbody tr").forEach((tr, i) => { tr.dataset.signal = sig[i].intersection; tr.dataset.state = sig[i].state; });
}

// a followed escort: each signal's last request, re-timed by the hub from the vehicle's positions, and the vehicle
function renderFollowed(r) {
  const v = r.vehicle || { status: "waiting" }, sig = r.signals || r.route.map((i) => ({ intersection: i, state: r.unplanned.includes(i) ? "unplanned" : "waiting" }));
  const live = ["waiting", "following"].includes(v.status);
  $("#escort-result").innerHTML = `<div class="kv" data-escort="${esc(r.escort_id)}" data-vehicle-status="${esc(v.status)}"><span class="k">${t("escort_route")}</span><span>${esc(r.route.join(" → "))}</span></div>` +
    `<div class="kv"><span class="k">${t("escort_legs")}</span><span>${r.legs.map((l) => `${esc(l.corridor)} ${esc(l.signals[0])}..${esc(l.signals[l.signals.length - 1])} (${esc(l.direction)})`).join(" · ")}</span></div>` +
    `<div class="kv"><span class="k">${t("escort_vehicle")}</span><span id="escort-vehicle">${esc(r.vehicle_id)} · ${esc(t("v_" + v.status))}` +
    (v.s_m != null ? ` · ${Math.round(v.s_m)} / ${Math.round(v.length_m)} m · ${esc(v.speed_kmh)} km/h · ${localClock(v.ts_ms)}` : "") +
    (v.reason ? ` · ${esc(v.reason)}` : "") + `</span>` +
    (live && may("priority") ? ` <button id="escort-cancel">${t("escort_cancel")}</button>` : "") + `</div>` +
    `<div id="escort-signals">` + table(sig.map((x) => ({ intersection: x.intersection, corridor: x.corridor || "–", direction: x.direction || "–",
      arrival: x.eta_ms ? localClock(x.eta_ms) : "–", state: t(`st_${x.state}`), requests: x.hub ? x.hub.requests : "–",
      hub: x.hub ? `${x.hub.action}${x.hub.cross_delay_s ? ` · ${x.hub.cross_delay_s} s` : ""}${x.hub.action !== "restore" ? ` · ${localClock(x.hub.hold_from_ms)}–${localClock(x.hub.hold_to_ms)}` : ""}` : "–",
      controller: (x.controller || []).map((c) => c.status).join(" → ") || "–" })),
      ["intersection", "corridor", "direction", "arrival", "state", "requests", "hub", "controller"]) + `</div>`;
  document.querySelectorAll("#escort-signals tbody tr").forEach((tr, i) => {
    tr.dataset.signal = sig[i].intersection; tr.dataset.state = sig[i].state;
    tr.dataset.eta = sig[i].eta_ms || ""; tr.dataset.requests = sig[i].hub ? sig[i].hub.requests : 0; });
  const b = $("#escort-cancel");
  if (b) b.addEventListener("click", async () => {
    try { await api(`/api/v1/plans/escort/${encodeURIComponent(r.escort_id)}`, { method: "DELETE" }); toast(t("escort_cancel")); }
    catch (err) { toast(err.message); }
  });
}

async function followEscort(id, until) {  // refresh while the escort runs and the traffic page shows it
  while (S.escort === id && Date.now() < until) {
    let ended = false;
    if (S.page === "traffic") {
      try {
        const r = await api(`/api/v1/plans/escort/${encodeURIComponent(id)}`);
        renderEscort(r);
        ended = r.follow && !["waiting", "following"].includes((r.vehicle || {}).status);
      } catch (e) { console.error(e); }
    }
    if (ended) break;
    await new Promise((ok) => setTimeout(ok, 1000));  // a followed vehicle moves ~15 m/s: a second per refresh
  }
}

async function loadGrid() {
  const g = await api("/api/v1/grid/summary");
  $("#grid-totals").innerHTML = Object.entries(g.totals).map(([k, v]) =>
    `<div class="tile small"><div class="k">${t(k)}</div><div class="big">${v}</div></div>`).join("") +
    "";
  if (!S.cellsMap) { echarts.registerMap("cells", await api("/api/v1/city/cells.geojson")); S.cellsMap = true; }
  const chart = S.charts.grid || (S.charts.grid = echarts.init($("#grid-map")));
  const backlog = g.by_cell.map((r) => ({ name: r.cell_id, value: r.open_backlog, overdue: r.overdue }));
  chart.setOption({
    tooltip: { trigger: "item", formatter: (p) => `${esc(p.name)}<br>${t("open_backlog")}: ${p.value ?? 0}` +
      (p.data?.overdue ? ` · ${t("overdue")}: ${p.data.overdue}` : "") },
    visualMap: { min: 0, max: Math.max(3, ...backlog.map((b) => b.value || 0)), left: 10, bottom: 10,
                 textStyle: { color: "#dfe8f5" }, inRange: { color: ["#1e3a5f", "#f1c40f", "#c0392b"] } },
    series: [{ type: "map", map: "cells", nameProperty: "id", id: "cells", roam: false, data: backlog,
               itemStyle: { areaColor: "#1e3a5f", borderColor: "#335c8a" } }],
  });
  const cols = ["open_backlog", "overdue", "new_last_hour", "closed_on_time", "on_time_closure_rate"];
  $("#grid-units").innerHTML = table(g.by_unit, ["unit", ...cols, "categories"]);
  $("#grid-cats").innerHTML = table(g.by_category, ["category", ...cols]);
  $("#grid-cells").innerHTML = table(g.by_cell, ["cell_id", "district", ...cols]);
}

async function loadSensors() {
  const reg = await api("/api/v1/sensors?limit=1");
  $("#registry").innerHTML = `<div class="tile small"><div class="k">${t("registered")}</div><div class="big">${reg.total}</div></div>
    <div class="tile small"><div class="k">${t("complete")}</div><div class="big">${reg.metadata_complete}</div></div>`;
  await renderSensorMap();
  const f = await api("/api/v1/sensors/freshness");
  $("#freshness").innerHTML = table(f.rows, ["district", "family", "registered", "fresh", "stale", "silent"]);
  const d = await api("/api/v1/sensors/deadletters?limit=20");
  $("#deadletters").innerHTML = table(Object.entries(d.by_reason).map(([reason, count]) => ({ reason, count })), ["reason", "count"]) +
    table(d.by_sensor.map((s) => ({ sensor_id: s.sensor_id, total: s.total, reason: Object.keys(s.reasons).join(", ") })), ["sensor_id", "total", "reason"]);
}

// every sensor on the city map, coloured by the age of its last reading (freshness thresholds of its type)
const FRESH_COLOUR = { fresh: "#27ae60", stale: "#f1c40f", silent: "#c0392b", never: "#777" };
async function renderSensorMap() {
  const m = await api("/api/v1/sensors/freshness/map");
  const chart = S.charts.sensors || (S.charts.sensors = echarts.init($("#sensor-map")));
  const age = (s) => (s == null ? t("never") : s < 120 ? `${Math.round(s)} s` : s < 7200 ? `${Math.round(s / 60)} min` : `${(s / 3600).toFixed(1)} h`);
  chart.setOption({
    tooltip: { trigger: "item", formatter: (p) => p.data ? `${esc(p.data.name)} (${esc(p.data.type)})<br>${t("age")}: ${esc(age(p.data.age_s))}` +
      `<br>${t(p.data.freshness)}${p.data.dead ? ` · ${t("dead_letters")}: ${p.data.dead}` : ""}` : "" },
    geo: { map: "city", nameProperty: "id", roam: true, itemStyle: { areaColor: "#102643", borderColor: "#335c8a" } },
    legend: { data: Object.keys(FRESH_COLOUR).map((k) => t(k)), textStyle: { color: "#dfe8f5" } },
    series: Object.entries(FRESH_COLOUR).map(([k, colour]) => ({ name: t(k), type: "scatter", coordinateSystem: "geo", id: `fresh-${k}`,
      symbolSize: 7, itemStyle: { color: colour, borderColor: "#000" },
      data: m.rows.filter((r) => r.freshness === k).map((r) => ({ name: r.sensor_id, value: [r.lon, r.lat], type: r.type,
        age_s: r.age_s, freshness: r.freshness, dead: r.dead_letters })) })),
  });
  $("#sensor-counts").innerHTML = Object.entries(m.counts).map(([k, v]) =>
    `<div class="tile small" data-freshness="${k}"><div class="k">${t(k)}</div><div class="big" style="color:${FRESH_COLOUR[k]}">${v}</div></div>`).join("");
}

// --- actions ----------------------------------------------------------------------------------------
document.addEventListener("click", async (ev) => {
  const b = ev.target.closest("button");
  if (!b) return;
  try {
    if (b.classList.contains("ack")) {
      await api(`/api/v1/alerts/${b.dataset.fp}/ack`, { method: "POST", body: JSON.stringify({ comment: "cockpit" }) });
      b.disabled = true; b.textContent = t("acked"); b.classList.add("done"); toast(t("ack_sent"));
    } else if (b.classList.contains("unack")) {
      await api(`/api/v1/alerts/${b.dataset.fp}/unack`, { method: "POST", body: JSON.stringify({ comment: "cockpit" }) });
      b.disabled = true; toast(t("unack_sent"));
    } else if (b.classList.contains("silence")) {
      const matchers = b.dataset.district ? [`district=${b.dataset.district}`, `rule=${b.dataset.rule}`] : [`rule=${b.dataset.rule}`];
      await api("/api/v1/silences", { method: "POST", body: JSON.stringify({ matchers, duration: "1h", comment: "cockpit" }) });
      toast(t("silence_sent")); b.disabled = true;
    } else if (b.classList.contains("expire")) {
      await api(`/api/v1/silences/${b.dataset.id}/expire`, { method: "POST" }); route();
    }
  } catch (e) { toast(e.message); }
});

// --- live push (SSE read with fetch so the token goes in a header) ----------------------------------
async function live() {
  if (S.abort) S.abort.abort();
  S.abort = new AbortController();
  const dot = $("#live-dot");
  try {
    const r = await fetch("/api/v1/live", { headers: { Authorization: `Bearer ${S.token}` }, signal: S.abort.signal });
    if (!r.ok) throw new Error(`HTTP ${r.status}`);
    dot.className = "dot on";
    const reader = r.body.getReader(); const dec = new TextDecoder(); let buf = "";
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      buf += dec.decode(value, { stream: true });
      let i;
      while ((i = buf.indexOf("\n\n")) >= 0) {
        const chunk = buf.slice(0, i); buf = buf.slice(i + 2);
        const ev = /^event: (.*)$/m.exec(chunk)?.[1]; const data = /^data: (.*)$/m.exec(chunk)?.[1];
        if (ev && data) onEvent(ev, JSON.parse(data));
      }
    }
  } catch (e) { if (e.name === "AbortError") return; }
  dot.className = "dot off";
  setTimeout(live, 2000);  // reconnect
}

function onEvent(ev, data) {
  if (ev === "window" && S.page === "overview" && data.district?.length) {
    renderDistricts(data.district, data.window_end_ms);
    // the layers (road segments, air stations, alert markers) at most every 10 s: three reads and ~300 polylines
    if (Date.now() - (S.layersAt || 0) > 10000) { S.layersAt = Date.now(); renderLayers().catch(() => {}); }
  }
  if (ev === "window") {
    $("#stream-time").textContent = localTime(data.window_end_ms);
    if (data.closed_wall_ms) {  // window closed in the engine -> on screen (same machine clock in tests and benches)
      window.__pushLatenciesMs = (window.__pushLatenciesMs || []).concat([Date.now() - data.closed_wall_ms]);
      // the next frame after the tiles and map were updated: when the new window is painted
      requestAnimationFrame(() => {
        const ms = Date.now() - data.closed_wall_ms;
        window.__screenLatenciesMs = (window.__screenLatenciesMs || []).concat([{ ms, window_end_ms: data.window_end_ms,
          shown: $("#stream-time").textContent }]);
        $("#live-dot").title = `live: ${ms} ms from window close to screen`;
      });
    }
  }
  if (ev === "alerts") { if (S.page === "overview") renderFeed(); else if (S.page === "alerts") loadAlerts(); }
}

// --- start ------------------------------------------------------------------------------------------
$("#login-form").addEventListener("submit", (e) => {
  e.preventDefault(); S.token = $("#token-input").value.trim(); localStorage.setItem("cb_token", S.token); login();
});
$("#logout").addEventListener("click", () => { localStorage.removeItem("cb_token"); S.token = ""; if (S.abort) S.abort.abort(); showLogin(); });
$("#lang").addEventListener("click", () => { S.lang = S.lang === "zh" ? "en" : "zh"; localStorage.setItem("cb_lang", S.lang); applyLabels(); if (S.me) route(); });
window.addEventListener("hashchange", route);
window.addEventListener("resize", () => Object.values(S.charts).forEach((c) => c.resize()));
applyLabels();
if (S.token) login(); else showLogin();
