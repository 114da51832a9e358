// minewatch console page: the fused cases (issue 18) — every case with its clues by kind, highest priority first;
// opening a case lists its clues (camera alerts, power anomalies, tip-offs). Reads GET /api/cases[/<id>].
"use strict";

(() => {
  const CLUE_KINDS = [["camera", "摄像头告警 camera alert"], ["power", "用电异常 power anomaly"], ["tipoff", "举报 tip-off"]];
  const KIND_LABEL = Object.fromEntries(CLUE_KINDS);
  const STATUS_LABEL = {open: "办理中 open", dismissed: "误报 dismissed", closed: "已结 closed", merged: "已合并 merged"};
  const $c = (sel) => document.querySelector(sel);
  const escC = (v) => String(v ?? "").replace(/[&<>"']/g, (c) => ({"&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;"}[c]));
  const timeC = (t) => { if (!t) return ""; const d = new Date(t); return isNaN(d) ? escC(t) : d.toLocaleString("zh-CN", {hour12: false}); };
  let openCase = null;

  async function getJSON(path) {
    const resp = await fetch(path, {credentials: "same-origin"});
    if (resp.status === 401) { location.href = "/login?next=/"; throw new Error("login"); }
    const data = await resp.json().catch(() => ({}));
    if (!resp.ok) throw new Error(data.error || resp.statusText);
    return data;
  }

  async function loadCases() {
    const status = $c("#cases-status").value;
    const data = await getJSON("/api/cases?status=" + encodeURIComponent(status));
    const cases = data.cases || [];
    $c("#cases-count").textContent = String(cases.filter((c) => c.status === "open").length);
    const body = $c("#cases-table tbody");
    body.innerHTML = cases.map((c) => {
      const kinds = CLUE_KINDS.map(([k, label]) => (c.clues || {})[k]
        ? `<span class="clue-kind clue-${k}" data-kind="${k}" title="${escC(label)}">${escC(label.split(" ")[0])} × ${c.clues[k]}</span>` : "").join(" ");
      return `<tr data-case-id="${escC(c.case_id)}" class="prio-${c.priority >= 100 ? "top" : c.priority >= 60 ? "high" : "normal"}${c.case_id === openCase ? " sel" : ""}" tabindex="0">`
        + `<td class="case-priority">${escC(c.priority)}</td>`
        + `<td>${escC(c.township || "")}<br><small>${escC(c.zone_id || "")}${c.zone_kind ? " · " + escC(c.zone_kind) : ""}</small></td>`
        + `<td class="case-kinds">${kinds}</td><td>${escC(c.reason)}</td>`
        + `<td class="case-status">${escC(STATUS_LABEL[c.status] || c.status)}${c.acked_by ? "<br><small>✓ " + escC(c.acked_by) + "</small>" : ""}</td>`
        + `<td>${timeC(c.t_last)}</td></tr>`;
    }).join("") || `<tr><td colspan="6" class="hint">没有案件 · no cases</td></tr>`;
    if (openCase) await loadCase(openCase);
  }

  function clueText(c) {
    const d = c.detail || {};
    if (c.kind === "camera") return `${escC(d.class || "")} · ${escC(d.camera_id || d.alert_id || c.source_id)}`;
    if (c.kind === "power") return `电表 ${escC(d.meter_id)} · ${escC(d.kind)} · ${escC(Math.round(d.kwh_excess ?? 0))} kWh`;
    return `${escC(d.channel || "")} · ${escC(d.description || "")}${d.address ? " · " + escC(d.address) : ""}`;
  }

  async function loadCase(id) {
    openCase = id;
    const c = await getJSON("/api/cases/" + encodeURIComponent(id));
    for (const tr of document.querySelectorAll("#cases-table tbody tr")) tr.classList.toggle("sel", tr.dataset.caseId === id);
    const rows = (c.clue_list || []).map((x) => `<li class="clue clue-${escC(x.kind)}" data-kind="${escC(x.kind)}" data-clue-id="${escC(x.clue_id)}">`
      + `<b>${escC(KIND_LABEL[x.kind] || x.kind)}</b> ${timeC(x.t)} — ${escC(x.label)}<br><small>${clueText(x)}`
      + `${x.lat != null ? ` · ${(+x.lat).toFixed(5)}, ${(+x.lon).toFixed(5)}` : ""}</small></li>`).join("");
    $c("#case-detail").innerHTML = `<h3>案件 case ${escC(c.case_id)} · 优先级 priority <span id="case-priority">${escC(c.priority)}</span></h3>`
      + `<p>${escC(c.reason)} · ${escC(c.township || "")} ${escC(c.zone_id || "")} · ${escC(STATUS_LABEL[c.status] || c.status)}</p>`
      + `<ol id="case-clues">${rows}</ol>`;
  }

  $c("#cases-btn").onclick = () => {
    const panel = $c("#cases");
    panel.hidden = !panel.hidden;
    if (!panel.hidden) loadCases().catch((e) => { $c("#case-detail").textContent = String(e.message || e); });
  };
  $c("#cases").onclick = (ev) => { if (ev.target.id === "cases") ev.currentTarget.hidden = true; };
  $c("#cases-status").onchange = () => loadCases().catch(() => {});
  const pick = (ev) => { const tr = ev.target.closest("tr[data-case-id]"); if (tr) loadCase(tr.dataset.caseId).catch(() => {}); };
  $c("#cases-table").addEventListener("click", pick);
  $c("#cases-table").addEventListener("keydown", (ev) => { if (ev.key === "Enter") pick(ev); });
  document.addEventListener("keydown", (ev) => {
    const tag = (ev.target.tagName || "").toLowerCase();
    if (ev.key === "Escape") $c("#cases").hidden = true;
    if (ev.key === "c" && !ev.ctrlKey && !ev.metaKey && !ev.altKey && !["input", "textarea", "select"].includes(tag)) $c("#cases-btn").click();
  });
  // the count in the header, and the open panel, follow new clues
  loadCases().catch(() => {});
  setInterval(() => loadCases().catch(() => {}), 10000);
})();
