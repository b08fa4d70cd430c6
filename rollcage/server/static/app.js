// rollcage dashboard: plain JavaScript, no external assets. Hash routes:
//   #/runs  #/runs/RUN  #/runs/RUN/episodes/EP?step=N  #/alerts  #/sandboxes
"use strict";

const SEVERITIES = ["critical", "high", "medium", "low", "info"];
const SEV_COLOR = { critical: "#b3001b", high: "#e8590c", medium: "#d9a400", low: "#3b82c4", info: "#8a94a6" };
const main = document.getElementById("main");
let token = localStorage.getItem("rollcage-token") || "";
let pageAbort = null; // aborts the live stream and timers of the page being left

function esc(v) {
  return String(v ?? "").replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" }[c]));
}
function h(html) { const t = document.createElement("template"); t.innerHTML = html.trim(); return t.content; }
function fmtTime(t) { return t ? new Date(t).toLocaleString() : ""; }
function sevChip(s) { return `<span class="chip sev sev-${esc(s)}">${esc(s)}</span>`; }
function setStatus(text) { document.getElementById("status").textContent = text; }
function trajLink(a) {
  return `#/runs/${encodeURIComponent(a.run_id)}/episodes/${encodeURIComponent(a.episode_id)}?step=${a.step ?? ""}`;
}

async function api(path, opts = {}) {
  const r = await fetch(path, { ...opts, headers: { Authorization: `Bearer ${token}`, ...(opts.headers || {}) } });
  if (r.status === 401) { showTokenForm("The server refused the token."); throw new Error("unauthorized"); }
  if (!r.ok) {
    let detail = r.statusText;
    try { detail = (await r.json()).detail; } catch (e) { /* not JSON */ }
    throw new Error(`${r.status}: ${detail}`);
  }
  return r.json();
}

function showTokenForm(message) {
  main.replaceChildren(h(`<h1>Sign in</h1><p class="muted">${esc(message || "")} Paste the server's token
    (the file <code>server.token</code> in its state directory).</p>
    <form class="token"><input type="password" name="token" placeholder="token" autocomplete="off">
    <button type="submit">Open</button></form>`));
  main.querySelector("form").addEventListener("submit", (ev) => {
    ev.preventDefault();
    token = ev.target.token.value.trim();
    localStorage.setItem("rollcage-token", token);
    route();
  });
}

// -- runs list ------------------------------------------------------------------------
async function pageRuns() {
  const runs = await api("/v1/runs");
  const rows = runs.map((r) => `<tr data-run="${esc(r.run_id)}">
    <td><a href="#/runs/${encodeURIComponent(r.run_id)}">${esc(r.run_id)}</a><div class="muted">${esc(r.name || "")}</div></td>
    <td>${esc(fmtTime(r.started))}</td><td class="episodes">${r.episodes}</td>
    <td class="success">${r.success_rate == null ? "–" : (100 * r.success_rate).toFixed(0) + "%"}</td>
    <td>${r.alerts}</td>
    <td>${Object.entries(r.alerts_by_category).map(([c, n]) => `<span class="chip">${esc(c)} ${n}</span>`).join("")}</td>
    <td>${SEVERITIES.filter((s) => r.alerts_by_severity[s]).map((s) => `${sevChip(s)} ${r.alerts_by_severity[s]}`).join(" ")}</td>
  </tr>`).join("");
  main.replaceChildren(h(`<h1>Runs</h1><table id="runs"><thead><tr><th>run</th><th>started</th><th>episodes</th>
    <th>success</th><th>alerts</th><th>by category</th><th>by severity</th></tr></thead><tbody>
    ${rows || `<tr><td colspan="7" class="muted">no runs yet</td></tr>`}</tbody></table>`));
}

// -- run timeline ---------------------------------------------------------------------
async function pageRun(runId) {
  const run = await api(`/v1/runs/${encodeURIComponent(runId)}`);
  const eps = run.episode_list;
  const times = [];
  for (const e of eps) { for (const t of [e.started, e.ended]) if (t) times.push(Date.parse(t)); }
  for (const a of run.alert_marks) times.push(Date.parse(a.time));
  const t0 = Math.min(...times), t1 = Math.max(...times, t0 + 1000);
  const W = 1100, left = 130, right = 20, lane = 34, top = 26;
  const Hh = top + lane * Math.max(eps.length, 1) + 24;
  const x = (t) => left + ((Date.parse(t) - t0) / (t1 - t0)) * (W - left - right);
  const laneOf = {};
  eps.forEach((e, i) => { laneOf[e.episode_id] = i; });
  let svg = `<svg id="timeline" width="${W}" height="${Hh}" viewBox="0 0 ${W} ${Hh}" role="img" aria-label="timeline">`;
  for (let k = 0; k <= 5; k++) {
    const tx = left + (k / 5) * (W - left - right), tt = new Date(t0 + (k / 5) * (t1 - t0));
    svg += `<line x1="${tx}" x2="${tx}" y1="${top - 6}" y2="${Hh - 20}" stroke="#eef0f4"/>
      <text x="${tx}" y="${Hh - 6}" font-size="11" fill="#6b7385" text-anchor="middle">${esc(tt.toLocaleTimeString())}</text>`;
  }
  eps.forEach((e, i) => {
    const y = top + i * lane;
    const color = e.success === true ? "#cfe8d5" : e.success === false ? "#f3d6d6" : "#dfe4ec";
    svg += `<text x="8" y="${y + 17}" font-size="12" fill="#1d2330">${esc(e.episode_id)}</text>`;
    if (e.started && e.ended) {
      svg += `<rect class="lane" data-episode="${esc(e.episode_id)}" x="${x(e.started)}" y="${y + 6}" width="${Math.max(2, x(e.ended) - x(e.started))}"
        height="16" rx="3" fill="${color}"><title>${esc(e.episode_id)} ${esc(e.task || "")}</title></rect>`;
    }
  });
  for (const a of run.alert_marks) {
    if (!(a.episode_id in laneOf)) continue;
    const y = top + laneOf[a.episode_id] * lane + 14;
    svg += `<circle class="alert-mark" data-episode="${esc(a.episode_id)}" data-step="${a.step ?? ""}" data-severity="${esc(a.severity)}"
      cx="${x(a.time)}" cy="${y}" r="7" fill="${SEV_COLOR[a.severity] || "#888"}" tabindex="0">
      <title>${esc(a.severity)} ${esc(a.category)}: ${esc(a.rule)} (step ${a.step ?? "?"})</title></circle>`;
  }
  svg += "</svg>";
  const legend = SEVERITIES.map((s) => `<span>${sevChip(s)}</span>`).join("");
  const rows = eps.map((e) => `<tr><td><a href="#/runs/${encodeURIComponent(runId)}/episodes/${encodeURIComponent(e.episode_id)}">${esc(e.episode_id)}</a></td>
    <td>${esc(e.task || "")}</td><td>${e.steps ?? ""}</td><td>${esc(e.reward ?? "")}</td>
    <td>${e.success == null ? "" : e.success ? "yes" : "no"}</td><td>${esc(e.terminated_by || "")}</td></tr>`).join("");
  main.replaceChildren(h(`<h1>Run ${esc(runId)} <span class="muted">${esc(run.name || "")}</span></h1>
    <p>${run.episodes} episodes · success ${run.success_rate == null ? "–" : (100 * run.success_rate).toFixed(0) + "%"} · ${run.alerts} alerts
    ${Object.entries(run.alerts_by_category).map(([c, n]) => `<span class="chip">${esc(c)} ${n}</span>`).join("")}</p>
    <div class="timeline">${svg}</div><div class="legend muted">alerts: ${legend} — click a mark to open its step</div>
    <h2>Episodes</h2><table><thead><tr><th>episode</th><th>task</th><th>steps</th><th>reward</th><th>success</th><th>ended by</th></tr></thead>
    <tbody>${rows}</tbody></table>`));
  const open = (el) => { location.hash = trajLink({ run_id: runId, episode_id: el.dataset.episode, step: el.dataset.step }); };
  main.querySelectorAll(".alert-mark").forEach((el) => {
    el.addEventListener("click", () => open(el));
    el.addEventListener("keydown", (ev) => { if (ev.key === "Enter") open(el); });
  });
}

// -- trajectory -----------------------------------------------------------------------
function evidenceHtml(ev) {
  const parts = [];
  if (ev.type === "flow") {
    parts.push(`<div><b>flow</b> ${esc(ev.protocol || "")} → ${esc(ev.dst_ip)}:${esc(ev.dst_port)} ${esc(ev.domain || "")}
      <span class="chip">${esc(ev.decision || ev.phase || "")}</span> ${(ev.indicators || []).map((i) => `<span class="chip">${esc(i)}</span>`).join("")}</div>`);
  } else if (ev.type === "dns") {
    parts.push(`<div><b>dns</b> ${esc(ev.qname)} ${esc(ev.qtype || "")} <span class="chip">${esc(ev.decision || "")}</span></div>`);
  } else if (ev.type === "exec") {
    parts.push(`<div><b>process</b> pid ${esc(ev.pid)} (parent ${esc(ev.ppid ?? "?")}: ${esc(ev.pcmdline || ev.pname || "")})</div>`);
    if (ev.ancestors) parts.push(`<div class="muted">process tree: ${(ev.ancestors || []).map(esc).join(" ← ")}</div>`);
  } else {
    parts.push(`<div><b>${esc(ev.type)}</b></div>`);
  }
  const cmd = ev.cmdline || ev.command;
  if (cmd) parts.push(`<pre class="evidence-cmd">${esc(cmd)}</pre>`);
  return parts.join("");
}

function alertHtml(a) {
  const resp = a.response ? `<span class="chip">response: ${esc(a.response.taken || a.response.mode || "")}</span>` : "";
  return `<div class="alert ${esc(a.severity)}" data-alert-id="${esc(a.id)}">
    <div>${sevChip(a.severity)} <b>${esc(a.rule)}</b> <span class="chip">${esc(a.category)}</span>
      ${(a.mitre || []).map((t) => `<span class="chip">${esc(t)}</span>`).join("")} <span class="chip">action: ${esc(a.action || "")}</span> ${resp}
      <span class="muted">${esc(fmtTime(a.time))} · ${esc(a.sandbox_id || "")}${a.pid ? " · pid " + esc(a.pid) : ""}</span></div>
    ${a.output ? `<div>${esc(a.output)}</div>` : ""}
    <div class="label">evidence</div>${(a.evidence || []).map(evidenceHtml).join("") || '<div class="muted">none</div>'}
  </div>`;
}

function toolCallText(tc) {
  if (!tc) return "";
  if (typeof tc === "string") return tc;
  const args = tc.arguments;
  if (args && typeof args === "object" && typeof args.command === "string") return `${tc.name || "tool"}: ${args.command}`;
  return `${tc.name || "tool"}(${typeof args === "string" ? args : JSON.stringify(args)})`;
}

async function pageTrajectory(runId, episodeId, params) {
  const tr = await api(`/v1/runs/${encodeURIComponent(runId)}/episodes/${encodeURIComponent(episodeId)}`);
  const want = params.get("step");
  const steps = tr.steps.map((s) => {
    const message = s.message ?? s.model_message ?? s.assistant ?? "";
    const obs = s.observation ?? s.output ?? "";
    return `<div class="card step" id="step-${esc(s.step)}" data-step="${esc(s.step)}">
      <h3>Step ${esc(s.step)} <span class="muted">${esc(fmtTime(s.time))}</span>
        ${s.alerts.length ? s.alerts.map((a) => sevChip(a.severity)).join("") : ""}</h3>
      <div class="label">model</div><div class="message">${esc(typeof message === "string" ? message : JSON.stringify(message))}</div>
      <div class="label">tool call</div><pre class="tool-call">${esc(toolCallText(s.tool_call ?? s.action))}</pre>
      <div class="label">observation</div><pre class="observation">${esc(typeof obs === "string" ? obs : JSON.stringify(obs))}</pre>
      ${s.alerts.map(alertHtml).join("")}
    </div>`;
  }).join("");
  const unpinned = tr.unpinned_alerts.length
    ? `<h2>Alerts without a recorded step</h2>${tr.unpinned_alerts.map(alertHtml).join("")}` : "";
  main.replaceChildren(h(`<h1><a href="#/runs/${encodeURIComponent(runId)}">${esc(runId)}</a> / ${esc(episodeId)}</h1>
    <p class="muted">${esc(tr.task || "")} · reward ${esc(tr.reward ?? "–")} · success ${tr.success == null ? "–" : tr.success ? "yes" : "no"}
    ${tr.terminated_by ? "· ended by " + esc(tr.terminated_by) : ""}</p>${steps || '<p class="muted">no steps recorded</p>'}${unpinned}`));
  if (want !== null && want !== "") {
    const el = document.getElementById(`step-${want}`);
    if (el) { el.classList.add("selected"); el.scrollIntoView({ block: "center" }); }
  }
}

// -- live alert feed ------------------------------------------------------------------
async function pageAlerts(params, signal) {
  const rules = await api("/v1/rules");
  const categories = [...new Set(rules.map((r) => r.category))].sort();
  const selCat = params.getAll("category"), selSev = params.getAll("severity");
  main.replaceChildren(h(`<h1>Live alerts</h1><div class="filters">
    <div><b>severity</b> ${SEVERITIES.map((s) => `<label><input type="checkbox" name="severity" value="${s}" ${selSev.includes(s) ? "checked" : ""}> ${s}</label>`).join("")}</div>
    <div><b>category</b> <select name="category" id="category"><option value="">all</option>
      ${categories.map((c) => `<option ${selCat.includes(c) ? "selected" : ""}>${esc(c)}</option>`).join("")}</select></div>
    <span id="live" class="muted">connecting…</span></div>
    <table id="feed"><thead><tr><th>time</th><th>severity</th><th>category</th><th>rule</th><th>run / episode / step</th><th>sandbox</th></tr></thead><tbody></tbody></table>`));
  const apply = () => {
    const q = new URLSearchParams();
    main.querySelectorAll("input[name=severity]:checked").forEach((el) => q.append("severity", el.value));
    const c = main.querySelector("#category").value;
    if (c) q.append("category", c);
    location.hash = `#/alerts?${q}`;
  };
  main.querySelectorAll("input[name=severity], #category").forEach((el) => el.addEventListener("change", apply));
  const q = new URLSearchParams();
  selSev.forEach((s) => q.append("severity", s));
  selCat.forEach((c) => q.append("category", c));
  const body = main.querySelector("#feed tbody");
  const add = (a) => {
    const where = a.run_id ? `<a href="${trajLink(a)}">${esc(a.run_id)} / ${esc(a.episode_id ?? "–")} / ${esc(a.step ?? "–")}</a>` : "–";
    body.prepend(h(`<tr class="feed-row" data-severity="${esc(a.severity)}"><td>${esc(fmtTime(a.time))}</td><td>${sevChip(a.severity)}</td>
      <td>${esc(a.category)}</td><td>${esc(a.rule)}</td><td>${where}</td><td>${esc(a.sandbox_id || "")}</td></tr>`));
    while (body.children.length > 500) body.lastElementChild.remove();
  };
  const recent = await api(`/v1/alerts?limit=100&${q}`);
  recent.forEach(add);
  let cursor = recent.length ? recent[recent.length - 1].id : null;
  const live = main.querySelector("#live");
  while (!signal.aborted) {
    try {
      const sq = new URLSearchParams(q);
      if (cursor !== null) sq.set("after_id", cursor);
      const r = await fetch(`/v1/alerts/stream?${sq}`, { headers: { Authorization: `Bearer ${token}` }, signal });
      if (!r.ok) throw new Error(`stream: ${r.status}`);
      live.textContent = "live";
      const reader = r.body.getReader(), dec = new TextDecoder();
      let buf = "";
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        buf += dec.decode(value, { stream: true });
        let cut;
        while ((cut = buf.indexOf("\n\n")) >= 0) {
          const block = buf.slice(0, cut); buf = buf.slice(cut + 2);
          let data = null, id = null;
          for (const line of block.split("\n")) {
            if (line.startsWith("data: ")) data = line.slice(6);
            else if (line.startsWith("id: ")) id = Number(line.slice(4));
          }
          if (data) { add(JSON.parse(data)); if (id !== null) cursor = id; }
        }
      }
    } catch (e) {
      if (signal.aborted) return;
      live.textContent = "reconnecting…";
    }
    await new Promise((res) => setTimeout(res, 1000));
  }
}

// -- per-sandbox resource charts -------------------------------------------------------
function lineChart(title, series, unit) {
  const W = 400, Hh = 140, pad = 30;
  const all = series.flatMap((s) => s.points);
  if (!all.length) return `<div class="card chart"><b>${esc(title)}</b><div class="muted">no samples</div></div>`;
  const xs = all.map((p) => p[0]), ys = all.map((p) => p[1]);
  const x0 = Math.min(...xs), x1 = Math.max(...xs, x0 + 1), y1 = Math.max(...ys, 1);
  const px = (v) => pad + ((v - x0) / (x1 - x0)) * (W - pad - 8), py = (v) => Hh - 18 - (v / y1) * (Hh - 30);
  let svg = `<svg viewBox="0 0 ${W} ${Hh}" preserveAspectRatio="none"><line x1="${pad}" x2="${W - 8}" y1="${Hh - 18}" y2="${Hh - 18}" stroke="#ccc"/>
    <text x="2" y="14" font-size="10" fill="#6b7385">${esc(y1.toFixed(y1 < 10 ? 1 : 0))}${esc(unit)}</text>`;
  for (const s of series) {
    svg += `<polyline fill="none" stroke="${s.color}" stroke-width="1.6" points="${s.points.map((p) => `${px(p[0]).toFixed(1)},${py(p[1]).toFixed(1)}`).join(" ")}"/>`;
  }
  svg += "</svg>";
  return `<div class="card chart" data-chart="${esc(title)}"><b>${esc(title)}</b>${svg}</div>`;
}

async function pageSandboxes(params, signal) {
  const [held, sampled] = await Promise.all([api("/v1/sandboxes"), api("/v1/resources")]);
  const ids = [...new Set([...held.map((s) => s.id), ...sampled.map((s) => s.sandbox_id)])];
  const chosen = params.get("id") || ids[0];
  main.replaceChildren(h(`<h1>Sandboxes</h1>
    <p>${held.length} held by this server. Samples for:
    <select id="sandbox">${ids.map((i) => `<option ${i === chosen ? "selected" : ""}>${esc(i)}</option>`).join("")}</select></p>
    <div class="charts" id="charts"></div>`));
  main.querySelector("#sandbox").addEventListener("change", (ev) => { location.hash = `#/sandboxes?id=${encodeURIComponent(ev.target.value)}`; });
  if (!chosen) { main.querySelector("#charts").replaceChildren(h('<p class="muted">no samples yet</p>')); return; }
  const draw = async () => {
    const evs = await api(`/v1/events?sandbox_id=${encodeURIComponent(chosen)}&type=resource&type=gpu&limit=2000`);
    const res = evs.filter((e) => e.type === "resource"), gpu = evs.filter((e) => e.type === "gpu");
    const t = (e) => Date.parse(e.time) / 1000;
    main.querySelector("#charts").replaceChildren(h(
      lineChart("CPU", [{ color: "#2456b3", points: res.map((e) => [t(e), e.cpu_pct || 0]) }], "%") +
      lineChart("Memory", [{ color: "#7a3fb3", points: res.map((e) => [t(e), (e.memory_bytes || 0) / 2 ** 20]) }], " MiB") +
      lineChart("GPU utilisation", [{ color: "#b3001b", points: gpu.map((e) => [t(e), e.util || 0]) }], "%") +
      lineChart("GPU memory", [{ color: "#e8590c", points: gpu.map((e) => [t(e), (e.memory_bytes || 0) / 2 ** 20]) }], " MiB")));
  };
  await draw();
  const timer = setInterval(() => { draw().catch(() => {}); }, 5000);
  signal.addEventListener("abort", () => clearInterval(timer));
}

// -- router ---------------------------------------------------------------------------
async function route() {
  const m = location.hash.match(/^#token=(.+)$/);
  if (m) { token = decodeURIComponent(m[1]); localStorage.setItem("rollcage-token", token); location.replace("#/runs"); return; }
  if (pageAbort) pageAbort.abort();
  pageAbort = new AbortController();
  const signal = pageAbort.signal;
  if (!token) { showTokenForm(""); return; }
  const [path, query] = (location.hash.slice(1) || "/runs").split("?");
  const params = new URLSearchParams(query || "");
  const parts = path.split("/").filter(Boolean).map(decodeURIComponent);
  document.querySelectorAll("[data-nav]").forEach((a) => a.classList.toggle("active", a.dataset.nav === parts[0]));
  main.replaceChildren(h('<p class="muted">loading…</p>'));
  try {
    if (parts[0] === "runs" && parts.length === 1) await pageRuns();
    else if (parts[0] === "runs" && parts.length === 2) await pageRun(parts[1]);
    else if (parts[0] === "runs" && parts[2] === "episodes" && parts.length === 4) await pageTrajectory(parts[1], parts[3], params);
    else if (parts[0] === "alerts") await pageAlerts(params, signal);
    else if (parts[0] === "sandboxes") await pageSandboxes(params, signal);
    else main.replaceChildren(h('<p>Unknown page. <a href="#/runs">Runs</a></p>'));
    setStatus(`updated ${new Date().toLocaleTimeString()}`);
  } catch (e) {
    if (signal.aborted || e.message === "unauthorized") return;
    main.replaceChildren(h(`<p class="error">${esc(e.message)}</p>`));
  }
}

window.addEventListener("hashchange", route);
route();
