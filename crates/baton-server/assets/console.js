// The agent console: queues with SLA countdowns, claim, the brief on top of the transcript,
// suggestions, reply, notes, transfer, resolve, hand back, presence; a supervisor view.
// Live through server-sent events.
(function () {
  "use strict";
  const $ = (id) => document.getElementById(id);
  let me = null;
  let current = null;
  let source = null;
  let queueNames = [];
  let ticker = null;

  async function call(path, body) {
    const r = await fetch(path, { method: body ? "POST" : "GET", credentials: "same-origin",
      headers: { "content-type": "application/json" }, body: body ? JSON.stringify(body) : undefined });
    const data = await r.json().catch(() => ({}));
    if (!r.ok) { const e = new Error((data.error && data.error.message) || r.statusText); e.status = r.status; throw e; }
    return data;
  }
  const text = (tag, content, cls) => { const el = document.createElement(tag); el.textContent = content; if (cls) el.className = cls; return el; };
  // An error message in words: the API marks names and values with backticks, shown as code.
  function showError(el, message) {
    el.replaceChildren();
    String(message || "").split("`").forEach((part, i) => el.append(i % 2 ? text("code", part) : document.createTextNode(part)));
  }

  function show(view) {
    $("login").hidden = view !== "login";
    $("work").hidden = view !== "work";
    $("supervisor").hidden = view !== "supervisor";
    $("nav").hidden = view === "login";
  }

  function slaClass(remaining, sla) {
    if (remaining <= 0) return "sla-bad";
    return remaining < sla * 0.2 ? "sla-warn" : "sla-ok";
  }

  async function loadQueues() {
    const box = $("queues");
    const { queues } = await call("/v1/queues");
    queueNames = queues.map((q) => q.name);
    const select = $("transfer-queue");
    if (!select.options.length) queueNames.forEach((n) => select.append(new Option(n, n)));
    // Built aside and swapped in at once, so the list never shows half-loaded.
    const next = document.createDocumentFragment();
    for (const q of queues) {
      const detail = await call("/v1/queues/" + encodeURIComponent(q.name));
      if (!detail.waiting.length) continue;
      next.append(text("h3", q.name + " (" + detail.waiting.length + " waiting)"));
      for (const w of detail.waiting) {
        const b = document.createElement("button");
        b.type = "button";
        b.className = "queue-item";
        b.dataset.conversation = w.conversation_id;
        if (current === w.conversation_id) b.setAttribute("aria-current", "true");
        const who = (w.customer && w.customer.name) || w.conversation_id;
        b.append(text("strong", who + " "), text("span", "priority " + w.priority + ", waiting " + w.waiting_seconds + " s ", "meta"));
        b.append(text("span", "SLA " + (w.sla_remaining_seconds > 0 ? w.sla_remaining_seconds + " s left" : "breached"), slaClass(w.sla_remaining_seconds, detail.sla_seconds)));
        if (w.offered_to === me.id) b.append(text("span", " offered to you", "sla-warn"));
        if (w.reasons) {
          const chips = document.createElement("div"); chips.className = "chips";
          w.reasons.forEach((code, i) => { const chip = text("span", (w.reasons_in_words || [])[i] || code); chip.title = code; chips.append(chip); });
          b.append(chips);
        }
        b.addEventListener("click", () => open(w.conversation_id));
        next.append(b);
      }
    }
    if (!next.children.length) next.append(text("p", "Nobody is waiting.", "meta"));
    box.replaceChildren(next);
    const mine = $("mine");
    mine.replaceChildren();
    (me.conversations || []).forEach((c) => {
      const b = document.createElement("button");
      b.type = "button"; b.className = "queue-item"; b.dataset.conversation = c;
      b.textContent = c; b.addEventListener("click", () => open(c));
      mine.append(b);
    });
  }

  function brief(b, customer) {
    const dl = $("brief");
    dl.replaceChildren();
    if (!b) return;
    const add = (k, v) => { if (v) { dl.append(text("dt", k), text("dd", v)); } };
    add("Why", b.reasons.map((r) => r.text).join("; "));
    add("Sentiment at handoff", b.sentiment.at_handoff.toFixed(2) + " (" + b.sentiment.trend + ")");
    add("Intent", b.intent + (b.desired_outcome ? ": " + b.desired_outcome : ""));
    if (b.summary.length) {
      // One line each: Problem, Wants, Tried, Facts, Last message.
      const dd = document.createElement("dd");
      const ul = document.createElement("ul"); ul.className = "summary";
      b.summary.forEach((line) => ul.append(text("li", line)));
      dd.append(ul);
      dl.append(text("dt", "Summary"), dd);
    }
    add("Details", b.entities.map((e) => e.kind + ": " + (e.value || e.text)).join(", "));
    add("Already tried", b.attempted_solutions.map((a) => a.summary + (a.rejected ? " (rejected)" : "")).join("; "));
    const c = b.customer;
    add("Customer", [c.name, c.tier, c.tenure_days != null ? c.tenure_days + " days" : null, c.email].filter(Boolean).join(", "));
    add("Next step", b.recommended_next_step);
  }

  async function open(id) {
    current = id;
    $("conv-error").textContent = "";
    const c = await call("/v1/conversations/" + encodeURIComponent(id));
    $("conv-title").textContent = ((c.customer && c.customer.name) || id) + ": " + c.state + (c.queue ? " in " + c.queue : "");
    $("conv-body").hidden = false;
    brief(c.brief, c.customer);
    const t = $("transcript");
    t.replaceChildren();
    c.turns.forEach((turn) => {
      const li = document.createElement("li");
      li.className = turn.role;
      li.append(text("span", turn.role, "who"), document.createTextNode(turn.text || (turn.body.action ? "(" + turn.body.action + ")" : "")));
      t.append(li);
    });
    (c.events || []).filter((e) => e.kind === "note").forEach((e) => {
      const li = document.createElement("li");
      li.append(text("span", "note", "who"), document.createTextNode(e.reason));
      t.append(li);
    });
    t.scrollTop = t.scrollHeight;
    const mine = c.state === "assigned" && c.agent_id === me.id;
    const waiting = c.state === "queued" || c.state === "offered";
    $("claim").hidden = !waiting;
    $("decline").hidden = !(c.state === "offered" && c.agent_id === me.id);
    $("owner-tools").hidden = !mine;
    if (mine) {
      const a = await call("/v1/conversations/" + encodeURIComponent(id) + "/assist");
      const box = $("suggestions");
      box.replaceChildren();
      a.suggestions.forEach((s) => {
        const b = document.createElement("button");
        b.type = "button"; b.className = "secondary";
        b.dataset.kind = s.kind;
        b.textContent = s.kind === "warm_introduction" ? "Use the warm introduction" : "Use the answer from the knowledge base";
        b.addEventListener("click", () => { $("reply").value = s.text; $("reply").focus(); });
        box.append(b);
      });
      a.kb_links.forEach((k) => box.append(text("p", "Article: " + k.title, "meta")));
    }
    document.querySelectorAll(".queue-item").forEach((b) => b.setAttribute("aria-current", String(b.dataset.conversation === id)));
  }

  async function act(path, body) {
    $("conv-error").textContent = "";
    try {
      await call("/v1/conversations/" + encodeURIComponent(current) + "/" + path, Object.assign({ agent_id: me.id }, body || {}));
      await refreshMe();
      await open(current);
      await loadQueues();
    } catch (e) { showError($("conv-error"), e.message); }
  }

  async function refreshMe() {
    me = await call("/v1/me");
    $("whoami").textContent = me.id + " (" + me.role + ")";
    if (me.agent) $("presence").value = me.agent.status;
  }

  async function supervisorView() {
    show("supervisor");
    const body = $("sup-body");
    body.replaceChildren();
    try {
      const s = await call("/v1/supervisor");
      const table = document.createElement("table");
      table.innerHTML = "<caption>Queues</caption><thead><tr><th>Queue</th><th>Waiting</th><th>Longest wait</th><th>Agents available</th><th>Service level today</th></tr></thead>";
      const tb = document.createElement("tbody");
      s.queues.forEach((q) => {
        const tr = document.createElement("tr");
        [q.name, q.waiting, Math.round(q.longest_wait_seconds) + " s", q.agents_available + " of " + q.agents_online,
         q.service_level_today == null ? "-" : Math.round(q.service_level_today * 100) + "%"].forEach((v) => tr.append(text("td", String(v))));
        tb.append(tr);
      });
      table.append(tb); body.append(table);
      body.append(text("h3", "Agents"));
      const ul = document.createElement("ul");
      s.agents.forEach((a) => ul.append(text("li", a.name + ": " + a.status + ", " + a.assigned + " of " + a.capacity)));
      body.append(ul, text("h3", "Recent escalations"));
      const ol = document.createElement("ul");
      s.recent_escalations.forEach((r) => ol.append(text("li", (r.customer || r.conversation_id) + " in " + r.queue + " (" + r.state + "): " + (r.reasons_in_words || r.reasons || []).join("; "))));
      body.append(ol, text("p", s.sla_breaches.length + " SLA breaches open", "meta"));
    } catch (e) {
      const p = text("p", "", "error");
      showError(p, e.status === 403 ? "You do not have access to the supervisor view." : e.message);
      body.append(p);
      body.firstChild.setAttribute("role", "alert");
    }
  }

  function follow() {
    if (source) source.close();
    source = new EventSource("/v1/events?after=-1&scope=handoff");
    let pending = false;
    const update = async () => {
      if (pending) return;
      pending = true;
      setTimeout(async () => {
        pending = false;
        try { await refreshMe(); await loadQueues(); if (current) await open(current); } catch (e) { /* next event retries */ }
      }, 100);
    };
    ["turn", "transition", "routing", "note", "sla_warning", "sla_breach", "wait_update"].forEach((k) => source.addEventListener(k, update));
  }

  async function route() {
    try { await refreshMe(); } catch (e) { show("login"); $("login-id").focus(); return; }
    if (me.open) { show("login"); showError($("login-error"), "This server has no accounts yet: create one with `baton agents add`."); return; }
    if (location.hash === "#supervisor") { await supervisorView(); return; }
    show("work");
    await loadQueues();
    if (!source) follow();
    // Waiting times and SLA countdowns move on their own: refresh them every five seconds.
    if (!ticker) ticker = setInterval(() => { if (me && !$("work").hidden) loadQueues().catch(() => {}); }, 5000);
  }

  $("login-form").addEventListener("submit", async (e) => {
    e.preventDefault();
    $("login-error").textContent = "";
    try {
      await call("/v1/login", { id: $("login-id").value, password: $("login-password").value });
      await route();
    } catch (err) { showError($("login-error"), err.message); }
  });
  $("logout").addEventListener("click", async () => {
    await call("/v1/logout", {});
    if (source) { source.close(); source = null; }
    me = null; current = null;
    $("queues").replaceChildren(); $("mine").replaceChildren(); $("conv-body").hidden = true; $("sup-body").replaceChildren();
    show("login");
  });
  $("presence").addEventListener("change", () => call("/v1/agents/" + encodeURIComponent(me.id) + "/presence", { status: $("presence").value }));
  $("claim").addEventListener("click", () => act("claim"));
  $("decline").addEventListener("click", () => act("decline"));
  $("reply-form").addEventListener("submit", (e) => { e.preventDefault(); const t = $("reply").value; $("reply").value = ""; act("reply", { text: t }); });
  $("note-form").addEventListener("submit", (e) => { e.preventDefault(); const t = $("note").value; $("note").value = ""; act("notes", { text: t }); });
  $("transfer").addEventListener("click", () => {
    const to = $("transfer-agent").value.trim();
    act("transfer", Object.assign({ queue: $("transfer-queue").value }, to ? { to_agent: to } : {}));
  });
  $("resolve").addEventListener("click", () => act("resolve", { disposition: $("disposition").value }));
  $("handback").addEventListener("click", () => act("handback"));
  window.addEventListener("hashchange", route);
  route();
})();
