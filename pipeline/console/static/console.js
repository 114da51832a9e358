// minewatch console page: live alert list, map (Leaflet vector layers), case steps, keyboard shortcuts.
"use strict";

const PAGE = JSON.parse(document.getElementById("page-data").textContent);
const STEP_EN = {discovered: "discovered", stopped: "stopped on site", reported: "reported",
                 transferred: "transferred", investigated: "investigated", rectified: "rectified"};
const KIND_COLOR = {closed_mine: "#e5484d", illegal_site: "#f0a030", licensed_area: "#3dd68c", fire_watch: "#b07cff"};
const PAGE_SIZE = 500, LIST_MAX = 5000;  // the list loads PAGE_SIZE more on request, up to LIST_MAX
const state = {alerts: [], total: 0, limit: PAGE_SIZE, sel: null, detailSig: "", filters: {status: "open"}, change: -1, fitted: false};
const $ = (sel) => document.querySelector(sel);

function esc(v) {
  return String(v ?? "").replace(/[&<>"']/g, (c) => ({"&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;"}[c]));
}
function fmtTime(t) {
  if (!t) return "";
  const d = new Date(t);
  return isNaN(d) ? esc(t) : d.toLocaleString("zh-CN", {hour12: false});
}
function stepLabel(s) { return `${PAGE.step_labels[s] || s} ${STEP_EN[s] || s}`; }
// class, rule and zone-kind names in Chinese (the English name where there is none)
const zhClass = (c) => (PAGE.class_labels || {})[c] || c;
const zhRule = (r) => (PAGE.rule_labels || {})[r] || r;
const zhKind = (k) => (PAGE.kind_labels || {})[k] || k;

async function api(path, opts = {}) {
  const resp = await fetch(path, Object.assign({credentials: "same-origin"}, opts));
  if (resp.status === 401) { location.href = "/login?next=" + encodeURIComponent(location.pathname); throw new Error("login"); }
  const data = await resp.json().catch(() => ({}));
  if (!resp.ok) throw new Error(data.error || resp.statusText);
  return data;
}
function post(path, body) {
  return api(path, {method: "POST", headers: {"Content-Type": "application/json", "X-CSRF-Token": PAGE.csrf},
                    body: JSON.stringify(body)});
}

// ---------------------------------------------------------------- list and filters
async function loadAlerts() {
  const params = Object.entries(state.filters).filter(([, v]) => v);
  params.push(["limit", String(state.limit)]);
  const data = await api("/api/alerts?" + new URLSearchParams(params).toString());
  state.alerts = data.alerts;
  state.total = data.total ?? data.alerts.length;
  state.change = Math.max(state.change, data.change);
  fillFacets(data.facets);
  renderList();
  renderAlertLayers();
  if (state.sel) await loadDetail(state.sel);
}

function fillFacets(facets) {
  for (const key of ["township", "zone_kind", "class"]) {
    const select = $("#f-" + key);
    const have = new Set([...select.options].map((o) => o.value));
    const label = {township: (v) => v, zone_kind: (v) => `${zhKind(v)} ${v}`, class: (v) => `${zhClass(v)} ${v}`}[key];
    for (const v of facets[key] || []) {
      if (!have.has(v)) select.add(new Option(label(v), v));
    }
  }
}

// alerts that arrived while the page was open are marked until the operator opens them; the tab's title
// counts them, so a control room notices a new alert in a background tab
const BASE_TITLE = document.title;
function markFresh() {
  // new = received by the register after the page was served, and not opened here since (loading more of the
  // list or changing the filters shows older alerts: those are not new)
  if (state.known === undefined) { state.known = new Set(); state.fresh = new Set(); }
  const arrived = [];
  for (const a of state.alerts) {
    if (state.known.has(a.alert_id)) continue;
    state.known.add(a.alert_id);
    if (a.received_at > PAGE.now) { state.fresh.add(a.alert_id); arrived.push(a); }
  }
  document.title = state.fresh.size ? `(${state.fresh.size}) ${BASE_TITLE}` : BASE_TITLE;
  if (arrived.length) announce(arrived);
}

// a new alert: a sound, and a desktop notification when the operator allowed them (button 🔔: browsers
// want a click before they play sound or show notifications)
const notifier = {audio: null};
function enableNotifications() {
  try { notifier.audio = notifier.audio || new AudioContext(); notifier.audio.resume(); } catch (e) { /* no audio */ }
  if ("Notification" in window && Notification.permission === "default") {
    Notification.requestPermission().then(renderNotifyButton);
  }
  renderNotifyButton();
}
function renderNotifyButton() {
  const b = $("#notify-btn");
  const on = "Notification" in window && Notification.permission === "granted";
  b.classList.toggle("on", on);
  b.title = on ? "desktop notifications and sound on new alerts" : "click to allow desktop notifications and sound";
}
function beep() {
  try {
    notifier.audio = notifier.audio || new AudioContext();
    const ctx = notifier.audio, osc = ctx.createOscillator(), gain = ctx.createGain();
    osc.frequency.value = 880;
    gain.gain.setValueAtTime(0.2, ctx.currentTime);
    gain.gain.exponentialRampToValueAtTime(0.001, ctx.currentTime + 0.6);
    osc.connect(gain).connect(ctx.destination);
    osc.start();
    osc.stop(ctx.currentTime + 0.6);
    document.body.dataset.beeps = String((+document.body.dataset.beeps || 0) + 1);
  } catch (e) { /* no audio here */ }
}
function announce(arrived) {
  beep();
  if (!("Notification" in window) || Notification.permission !== "granted") return;
  const a = arrived[0];
  try {
    const n = new Notification(`新告警 ${arrived.length} new alert(s)`, {
      body: `${zhClass(a.class)} · ${zhRule(a.rule)} · ${[a.township, a.zone_name].filter(Boolean).join(" ")}`,
      tag: "minewatch-new-alert"});
    n.onclick = () => { window.focus(); select(a.alert_id); };
    document.body.dataset.notified = String((+document.body.dataset.notified || 0) + 1);
  } catch (e) { /* notifications unavailable */ }
}

function renderList() {
  markFresh();
  const ol = $("#alerts");
  ol.innerHTML = state.alerts.map((a) => {
    const where = [a.township, a.zone_name].filter(Boolean).join(" · ") || a.rule;
    const badge = a.case_status !== "open" ? `<span class="badge ${a.case_status}">${a.case_status}</span>`
      : `<span class="badge">${esc(PAGE.step_labels[a.case_step])}</span>`;
    const cls = [a.alert_id === state.sel ? "sel" : "", state.fresh.has(a.alert_id) ? "fresh" : ""].join(" ");
    return `<li data-alert-id="${esc(a.alert_id)}" class="${cls}">
      <span class="what cls-${esc(a.class)}" title="${esc(a.class)} · ${esc(a.rule)}">${esc(zhClass(a.class))} · ${esc(zhRule(a.rule))}</span>${badge}
      <span class="where">${esc(where)}</span>${a.event_type === "end" ? '<span class="badge end">ended</span>' : "<span></span>"}
      <span class="t">${fmtTime(a.t_last)} · ${esc(a.camera_name)}</span><span class="t">${a.has_snapshot ? "快照 snap" : ""}</span></li>`;
  }).join("");
  const shown = state.alerts.length, more = $("#more");
  $("#count").textContent = shown < state.total ? `${shown} / ${state.total} 条 alerts (newest first)` : `${shown} 条 alert(s)`;
  more.hidden = shown >= state.total;
  more.disabled = state.limit >= LIST_MAX;
  more.textContent = state.limit >= LIST_MAX ? `最多显示 ${LIST_MAX}: narrow the filters or export CSV`
    : `更多 show ${Math.min(PAGE_SIZE, state.total - shown)} more`;
}

function select(id, scroll = true) {
  state.sel = id;
  if (state.fresh && state.fresh.delete(id)) {
    document.title = state.fresh.size ? `(${state.fresh.size}) ${BASE_TITLE}` : BASE_TITLE;
    const li = document.querySelector(`#alerts li[data-alert-id="${CSS.escape(id)}"]`);
    if (li) li.classList.remove("fresh");
  }
  state.detailSig = "";
  for (const li of document.querySelectorAll("#alerts li")) li.classList.toggle("sel", li.dataset.alertId === id);
  const li = document.querySelector(`#alerts li.sel`);
  if (li && scroll) li.scrollIntoView({block: "nearest"});
  renderAlertLayers();
  const a = state.alerts.find((x) => x.alert_id === id);
  if (M.map && a && a.lat != null && !M.map.getBounds().contains([a.lat, a.lon])) M.map.panTo([a.lat, a.lon]);
  return loadDetail(id);
}

function move(delta) {
  if (!state.alerts.length) return;
  let i = state.alerts.findIndex((a) => a.alert_id === state.sel);
  i = i < 0 ? 0 : Math.min(Math.max(i + delta, 0), state.alerts.length - 1);
  select(state.alerts[i].alert_id);
}

// ---------------------------------------------------------------- detail and case steps
async function loadDetail(id) {
  let d;
  try { d = await api("/api/alerts/" + encodeURIComponent(id)); } catch (e) { return; }
  if (id !== state.sel) return;
  const sig = [d.seq, d.case_step, d.case_status, d.log.length, d.snapshot_bytes].join("|");
  if (sig === state.detailSig) return;  // nothing new: keep what the operator is typing
  state.detailSig = sig;
  renderDetail(d);
}

function renderDetail(d) {
  const p = d.payload, loc = p.location || {}, zone = p.zone || {}, cam = p.camera || {};
  const resp = zone.responsible || {};
  const ell = hasEllipse(loc.ellipse_90) ? loc.ellipse_90 : null;
  const want = p.snapshot && p.snapshot.sha256;
  const snapUrl = (sha) => `/snapshots/${encodeURIComponent(d.alert_id)}/${encodeURIComponent(sha)}.jpg`;
  const snap = d.snapshot_bytes ? `<a href="${snapUrl(d.snapshot_sha256)}" target="_blank" id="snap-link">
      <img class="snap" id="snapshot" alt="snapshot" src="${snapUrl(d.snapshot_sha256)}"></a>`
    : `<p class="hint" id="snapshot-missing">${p.snapshot ? "快照未到 snapshot not received yet" : "无快照 no snapshot for this alert"}</p>`;
  const snapCheck = !d.snapshot_bytes ? "—" : (!want ? `${d.snapshot_bytes} B`
    : (want === d.snapshot_sha256 ? `${d.snapshot_bytes} B, sha256 ✓` : `${d.snapshot_bytes} B, sha256 differs from the event's`));
  const latest = {};
  for (const e of d.log) if (PAGE.steps.includes(e.action)) latest[e.action] = e;
  const steps = PAGE.steps.map((s) => {
    const e = latest[s];
    const cls = e ? "done" : (s === d.next_step ? "next" : "");
    const meta = e ? `<div class="meta">${fmtTime(e.t_done)} · ${esc(e.actor)}${e.note ? " · " + esc(e.note) : ""}</div>
        <div class="meta">记录 recorded by ${esc(e.author)} ${fmtTime(e.t_recorded)}</div>` : "";
    return `<li class="${cls}" data-step="${s}"><b>${esc(stepLabel(s))}</b>${meta}</li>`;
  }).join("");
  const extra = d.log.filter((e) => !PAGE.steps.includes(e.action)).map((e) =>
    `<li class="extra"><b>${esc(e.action)}</b> <span class="meta">${esc(e.author)} ${fmtTime(e.t_recorded)}</span><div>${esc(e.note)}</div></li>`).join("");
  const form = d.next_step ? `<form class="step" id="step-form" data-step="${d.next_step}">
      <b>下一步 next: ${esc(stepLabel(d.next_step))}</b>
      <label>执行人 who did it <input id="step-actor" name="actor" placeholder="e.g. 张三 (网格员)" required></label>
      <label>经过 what was done <textarea id="step-note" name="note" rows="2"></textarea></label>
      <label>时间 when <input id="step-time" name="t_done" type="datetime-local"></label>
      <button type="submit" id="step-submit">记录 record ${esc(PAGE.step_labels[d.next_step])}</button>
    </form>` : "";
  const actions = `<div class="actions">
      ${d.case_status === "open" ? '<button type="button" id="dismiss-btn">误报 dismiss <kbd>d</kbd></button>'
        : '<button type="button" id="reopen-btn">重新打开 reopen <kbd>r</kbd></button>'}
      <button type="button" id="note-btn">备注 note</button></div>`;
  $("#detail").innerHTML = `<h2 id="detail-title" data-alert-id="${esc(d.alert_id)}">
      <span class="cls-${esc(d.class)}">${esc(zhClass(d.class))} ${esc(d.class)}</span> · ${esc(zhRule(d.rule))} <span class="badge ${d.case_status}" id="case-status">${esc(d.case_status)}</span></h2>
    ${snap}
    <dl>
      <dt>编号 id</dt><dd>${esc(d.alert_id)} (seq ${d.seq}, ${esc(d.event_type)})</dd>
      <dt>区域 zone</dt><dd>${esc(zone.name || "—")} ${zone.kind ? "(" + esc(zhKind(zone.kind)) + ")" : ""}</dd>
      <dt>情形 rule</dt><dd>${esc(zhRule(d.rule))} (${esc(d.rule)})</dd>
      <dt>乡镇 township</dt><dd>${esc(zone.township || "—")}</dd>
      <dt>网格员 supervisor</dt><dd>${esc(resp.name || "—")} ${esc(resp.phone || "")}</dd>
      <dt>位置 location</dt><dd>${loc.lat != null ? `${(+loc.lat).toFixed(5)}, ${(+loc.lon).toFixed(5)}` : "—"}
        ${ell ? ` ± ${Math.round(ell.semi_major_m)}×${Math.round(ell.semi_minor_m)} m (90 %)` : ""}
        ${loc.probability_in_zone != null ? ` · P(in zone) ${(+loc.probability_in_zone).toFixed(2)}` : ""}</dd>
      <dt>摄像机 camera</dt><dd>${esc(d.box_id)} / ${esc(cam.name || cam.id)}${loc.range_m != null && loc.bearing_deg != null ? ` · ${Math.round(loc.range_m)} m at ${Math.round(loc.bearing_deg)}°` : ""}</dd>
      <dt>快照 snapshot</dt><dd><span id="snapshot-check">${esc(snapCheck)}</span>${d.snapshots.length > 1
        ? " · " + d.snapshots.map((s, i) => `<a href="${snapUrl(s.sha256)}" target="_blank">#${i + 1}</a>`).join(" ") : ""}</dd>
      <dt>置信度 score</dt><dd>${d.score != null ? (+d.score).toFixed(2) : "—"}</dd>
      <dt>时间 seen</dt><dd>${fmtTime(d.t_first)} → ${fmtTime(d.t_last)}</dd>
    </dl>
    <h3>办理环节 case steps</h3>
    <ol class="steps" id="steps">${steps}</ol>
    <p class="error" id="detail-error"></p>
    ${form}${actions}
    ${extra ? `<h3>记录 log</h3><ol class="steps">${extra}</ol>` : ""}`;
  const f = $("#step-form");
  if (f) f.addEventListener("submit", (ev) => { ev.preventDefault(); submitStep(); });
  const b1 = $("#dismiss-btn"); if (b1) b1.onclick = () => statusAction("dismiss", "误报原因 reason for dismissal:");
  const b2 = $("#reopen-btn"); if (b2) b2.onclick = () => statusAction("reopen", "重新打开原因 reason for reopening:");
  $("#note-btn").onclick = () => statusAction("note", "备注 note:");
}

async function submitStep() {
  const f = $("#step-form");
  if (!f) return;
  const t = $("#step-time").value;
  try {
    await post(`/api/alerts/${encodeURIComponent(state.sel)}/steps`, {
      step: f.dataset.step, actor: $("#step-actor").value, note: $("#step-note").value,
      t_done: t ? new Date(t).toISOString() : null});
    state.detailSig = "";
    await loadAlerts();
    if (state.sel) await loadDetail(state.sel);
  } catch (e) {
    $("#detail-error").textContent = e.message;
    state.detailSig = "";
  }
}

async function statusAction(action, question) {
  if (!state.sel) return;
  const note = prompt(question);
  if (!note) return;
  try {
    await post(`/api/alerts/${encodeURIComponent(state.sel)}/${action}`, {note});
    state.detailSig = "";
    await loadAlerts();
  } catch (e) { $("#detail-error").textContent = e.message; }
}

// ---------------------------------------------------------------- quarantine (messages refused)
async function loadQuarantine() {
  const data = await api("/api/quarantine");
  const rows = data.quarantine || [];
  $("#quarantine-count").textContent = String(rows.length);
  $("#quarantine-btn").classList.toggle("warn", rows.length > 0);
  $("#quarantine-table tbody").innerHTML = rows.map((r) => `<tr data-quarantine-id="${esc(r.id)}">
      <td>${fmtTime(r.last_at)}</td><td>${esc(r.topic)}</td><td>${esc(r.alert_id || "")}</td><td>${esc(r.reason)}</td>
      <td>${esc(r.bytes)}</td><td>${esc(r.times)}</td><td><code>${esc(r.preview)}</code></td></tr>`).join("");
}

// ---------------------------------------------------------------- map
const M = {map: null, zones: null, towers: null, alerts: null};

function offset(lat, lon, east_m, north_m) {
  return [lat + north_m / 111320, lon + east_m / (111320 * Math.cos(lat * Math.PI / 180))];
}
function sector(t, range_m) {
  const hfov = Math.min(+t.hfov_deg || 60, 360), pan = +t.pan_deg || 0, pts = hfov >= 360 ? [] : [[t.lat, t.lon]];
  const n = Math.max(8, Math.ceil(hfov / 3));
  for (let i = 0; i <= n; i++) {
    const b = (pan - hfov / 2 + hfov * i / n) * Math.PI / 180;
    pts.push(offset(t.lat, t.lon, range_m * Math.sin(b), range_m * Math.cos(b)));
  }
  return pts;
}
// 90 % ellipse: semi-axes in metres, orientation = bearing of the major axis, degrees clockwise from north
function ellipse(lat, lon, e) {
  const o = (+e.orientation_deg || 0) * Math.PI / 180, a = +e.semi_major_m, b = +e.semi_minor_m, pts = [];
  for (let i = 0; i < 48; i++) {
    const th = 2 * Math.PI * i / 48, x = a * Math.cos(th), y = b * Math.sin(th);
    pts.push(offset(lat, lon, x * Math.sin(o) + y * Math.cos(o), x * Math.cos(o) - y * Math.sin(o)));
  }
  return pts;
}

function hasEllipse(e) { return !!e && e.semi_major_m != null && e.semi_minor_m != null; }

function legend() {
  const ctl = L.control({position: "bottomright"});
  ctl.onAdd = () => {
    const div = L.DomUtil.create("div", "legend");
    div.innerHTML = Object.entries(KIND_COLOR).map(([k, c]) => `<div><i style="background:${c}"></i>${esc(zhKind(k))} ${esc(k)}</div>`).join("")
      + '<div><i class="tw"></i>塔 tower · view sector</div><div><i class="al"></i>告警 alert · 90 % ellipse</div>'
      + '<div><i class="al fresh"></i>新告警 new, not opened yet</div>';
    return div;
  };
  return ctl;
}

function initMap() {
  if (typeof L === "undefined") return;
  M.map = L.map("map", {attributionControl: !!PAGE.tile_layer, keyboard: true}).setView([35, 105], 4);
  if (PAGE.tile_layer) {
    L.tileLayer(PAGE.tile_layer.url, {attribution: PAGE.tile_layer.attribution, maxZoom: PAGE.tile_layer.max_zoom}).addTo(M.map);
  } else if (PAGE.mbtiles) {  // a local MBTiles file (web.mbtiles_path), served by the console
    const t = PAGE.mbtiles;
    L.tileLayer(t.url, {attribution: t.attribution, minNativeZoom: t.min_zoom, maxNativeZoom: t.max_zoom, maxZoom: 19, className: "mbtiles"}).addTo(M.map);
    M.names = L.layerGroup().addTo(M.map);
  } else if (PAGE.hillshade) {  // offline base: the DEM's hillshade (web.hillshade) with place names
    M.map.createPane("base").style.zIndex = 150;
    L.imageOverlay(PAGE.hillshade.url, PAGE.hillshade.bounds, {pane: "base", className: "hillshade", interactive: false}).addTo(M.map);
    M.names = L.layerGroup().addTo(M.map);
  }
  L.control.scale({imperial: false}).addTo(M.map);
  legend().addTo(M.map);
  M.zones = L.layerGroup().addTo(M.map);
  M.towers = L.layerGroup().addTo(M.map);
  M.alerts = L.layerGroup().addTo(M.map);
  // 90 % ellipses above the pins (whose tip marks the point): at county zoom an ellipse of a few hundred metres
  // is a few pixels and would hide under its pin; clicks pass through to the pins
  M.map.createPane("ellipses").style.zIndex = 650;
  M.map.getPane("ellipses").style.pointerEvents = "none";
}

// a place name on the offline base map (zones and towers: the hillshade has no names of its own)
function placeName(latlng, name, kind) {
  L.marker(latlng, {kind, interactive: false, keyboard: false, icon: L.divIcon({className: "place-name " + kind,
    html: `<span data-place="${esc(name)}">${esc(name)}</span>`, iconSize: null, iconAnchor: kind === "tower" ? [-8, 8] : [0, 0]})}).addTo(M.names);
}

function dropNames(kind) {
  if (M.names) M.names.eachLayer((l) => { if (l.options.kind === kind) M.names.removeLayer(l); });
}

// zones once; towers (pose, status) and boxes (available) on every change of the register
async function loadMap() {
  const first = !state.zonesLoaded;
  const data = await api("/api/map" + (first ? "" : "?zones=0"));
  renderBoxes(data.boxes || []);
  if (!M.map) return;
  if (first) {
    state.zonesLoaded = true;
    M.zones.clearLayers();
    dropNames("zone");
    L.geoJSON(data.zones, {
      style: (f) => ({color: KIND_COLOR[f.properties.kind] || "#aaa", weight: 2, fillOpacity: 0.15}),
      onEachFeature: (f, layer) => layer.bindTooltip(`${esc(f.properties.name || f.properties.id)}<br>${esc(f.properties.kind)} · ${esc(f.properties.township || "")}`),
    }).eachLayer((l) => {
      M.zones.addLayer(l);
      if (M.names) placeName(l.getBounds().getCenter(), l.feature.properties.name || l.feature.properties.id, "zone");
    });
  }
  M.towers.clearLayers();
  dropNames("tower");
  for (const t of data.towers) {
    if (t.lat == null) continue;
    if (M.names) placeName(L.latLng(t.lat, t.lon), t.name || t.camera_id, "tower");
    L.polygon(sector(t, data.sector_range_m), {color: "#9fb3c8", weight: 1, fillOpacity: 0.05, dashArray: "4 4", interactive: false}).addTo(M.towers);
    L.marker([t.lat, t.lon], {icon: L.divIcon({className: "", html: `<div class="tower-pin ${esc(t.status || "")}" data-camera-id="${esc(t.camera_id)}"></div>`, iconSize: [12, 12]}), keyboard: false})
      .bindTooltip(`${esc(t.name || t.camera_id)} (${esc(t.box_id)})${t.status ? " · " + esc(t.status) : ""}`).addTo(M.towers);
  }
  fitOnce();
}

function renderBoxes(boxes) {
  $("#boxes").innerHTML = boxes.map((b) =>
    `<span class="box ${esc(b.available)}" data-box-id="${esc(b.box_id)}" title="${esc(b.t ? fmtTime(b.t) : "")}">${esc(b.name || b.box_id)} · ${esc(b.available)}</span>`).join("");
}

function renderAlertLayers() {
  if (!M.map) return;
  M.alerts.clearLayers();
  for (const a of state.alerts) {
    if (a.lat == null || a.lon == null) continue;
    const sel = a.alert_id === state.sel;
    const fresh = state.fresh && state.fresh.has(a.alert_id);
    if (hasEllipse(a.ellipse_90)) {
      L.polygon(ellipse(a.lat, a.lon, a.ellipse_90), {pane: "ellipses", className: "alert-ellipse", color: sel ? "#fff" : "#ffd166",
                                                    weight: 2, fillOpacity: 0.15, interactive: false}).addTo(M.alerts);
    }
    // a teardrop pin (a 16 px square rotated, see console.css) whose tip, 19 px below its box's top, is the point
    L.marker([a.lat, a.lon], {icon: L.divIcon({className: "", html: `<div class="alert-pin cls-${esc(a.class)}${sel ? " sel" : ""}${fresh ? " fresh" : ""}" data-alert-id="${esc(a.alert_id)}"></div>`,
                                               iconSize: [16, 16], iconAnchor: [8, 19]}),
                              keyboard: false, zIndexOffset: fresh ? 2000 : sel ? 1000 : 0})
      .on("click", () => select(a.alert_id)).bindTooltip(`${esc(zhClass(a.class))} · ${esc(a.zone_name || zhRule(a.rule))}`).addTo(M.alerts);
  }
  fitOnce();
}

function fitOnce() {
  if (state.fitted || !M.map) return;
  const layers = [...M.zones.getLayers(), ...M.towers.getLayers(), ...M.alerts.getLayers()];
  if (!layers.length) return;
  M.map.fitBounds(L.featureGroup(layers).getBounds().pad(0.1));
  state.fitted = true;
}

function centreOnSelected() {
  const a = state.alerts.find((x) => x.alert_id === state.sel);
  if (M.map && a && a.lat != null) M.map.setView([a.lat, a.lon], Math.max(M.map.getZoom(), 15));
}

// ---------------------------------------------------------------- live updates
function startLive() {
  let es = null;
  const live = $("#live");
  const connect = () => {
    es = new EventSource("/api/stream");
    es.addEventListener("change", (ev) => {
      const c = +ev.data;
      if (c !== state.change) {
        state.change = c; loadAlerts().catch(() => {}); loadMap().catch(() => {}); loadQuarantine().catch(() => {});
      }
    });
    es.onopen = () => { live.className = "live on"; };
    es.onerror = () => { live.className = "live off"; };
  };
  connect();
  // fallback when the stream is down (a proxy that buffers it, say): poll
  setInterval(() => { if (!es || es.readyState !== EventSource.OPEN) loadAlerts().catch(() => {}); }, 5000);
  setInterval(() => { if (!es || es.readyState !== EventSource.OPEN) loadMap().catch(() => {}); }, 15000);
  loadHealth();
  setInterval(loadHealth, 5000);
}

// this console's broker link: alerts stop arriving when it is down, so say so
async function loadHealth() {
  const el = $("#mqtt");
  try {
    const h = await api("/api/health");
    const up = h.mqtt_connected;
    el.className = "box " + (up ? "online" : "offline");
    el.textContent = up ? "MQTT ✓" : "MQTT ✗ 未连接 broker down";
    el.title = `${h.broker || ""} · ${h.client_id || ""} · events ${h.events ?? "?"}, duplicates ${h.duplicates ?? "?"}`;
    const warn = $("#broker-warning"), q = h.broker_queue;  // the broker drops bursts (Mosquitto's default queue)
    warn.hidden = !(q && q.status === "warn");
    warn.textContent = warn.hidden ? "" : "⚠ 代理队列过小 broker queue too small";
    warn.title = warn.hidden ? "" : q.detail;
  } catch (e) {
    el.className = "box offline";
    el.textContent = "console unreachable";
  }
}

// ---------------------------------------------------------------- keyboard
function onKey(ev) {
  const tag = (ev.target.tagName || "").toLowerCase();
  const help = $("#help");
  if (ev.key === "Escape") { help.hidden = true; $("#quarantine").hidden = true; if (["input", "textarea", "select"].includes(tag)) ev.target.blur(); return; }
  if (["input", "textarea", "select"].includes(tag)) {
    if (ev.key === "Enter" && (ev.ctrlKey || ev.metaKey) && ev.target.closest("#step-form")) { ev.preventDefault(); submitStep(); }
    return;
  }
  if (ev.ctrlKey || ev.metaKey || ev.altKey) return;
  const keys = {
    j: () => move(1), ArrowDown: () => move(1), k: () => move(-1), ArrowUp: () => move(-1),
    Enter: () => state.sel ? select(state.sel) : move(0), o: () => state.sel ? select(state.sel) : move(0),
    n: () => { const i = $("#step-actor"); if (i) i.focus(); },
    d: () => { const b = $("#dismiss-btn"); if (b) b.click(); },
    r: () => { const b = $("#reopen-btn"); if (b) b.click(); },
    s: () => { if (state.sel) window.open(`/snapshots/${encodeURIComponent(state.sel)}.jpg`, "_blank"); },
    m: centreOnSelected,
    f: () => $("#f-township").focus(), "/": () => $("#f-township").focus(),
    e: () => { location.href = "/export/cases.csv"; }, p: () => window.open("/notice", "_blank"),
    "?": () => { help.hidden = !help.hidden; },
    1: () => setStatus("open"), 2: () => setStatus("closed"), 3: () => setStatus("dismissed"), 4: () => setStatus(""),
  };
  const fn = keys[ev.key];
  if (fn) { ev.preventDefault(); fn(); }
}
function setStatus(v) { $("#f-status").value = v; state.filters.status = v; state.limit = PAGE_SIZE; loadAlerts(); }

// ---------------------------------------------------------------- start
document.addEventListener("keydown", onKey);
$("#help-btn").onclick = () => { $("#help").hidden = !$("#help").hidden; };
$("#help").onclick = (ev) => { if (ev.target.id === "help") ev.currentTarget.hidden = true; };
$("#quarantine-btn").onclick = () => { $("#quarantine").hidden = !$("#quarantine").hidden; };
$("#notify-btn").onclick = enableNotifications;
renderNotifyButton();
$("#more").onclick = () => { state.limit = Math.min(state.limit + PAGE_SIZE, LIST_MAX); loadAlerts(); };
$("#quarantine").onclick = (ev) => { if (ev.target.id === "quarantine") ev.currentTarget.hidden = true; };
for (const s of document.querySelectorAll("#filters select")) {
  s.addEventListener("change", () => { state.filters[s.dataset.key] = s.value; state.limit = PAGE_SIZE; loadAlerts(); });
}
$("#alerts").addEventListener("click", (ev) => { const li = ev.target.closest("li"); if (li) select(li.dataset.alertId, false); });
initMap();
loadMap().catch(() => {});
loadAlerts().catch(() => {});
loadQuarantine().catch(() => {});
startLive();
