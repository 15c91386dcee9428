// The customer widget: chat with the demo assistant, hand off to a person, follow the
// handoff live (server-sent events), rate the human part.
(function () {
  "use strict";
  const $ = (id) => document.getElementById(id);
  // The conversation's token travels only in its HttpOnly cookie (never in a URL); this
  // page remembers only that it started one.
  let started = sessionStorage.getItem("baton-widget-started") === "1";
  let lastCount = 0;
  let source = null;

  async function call(path, body) {
    const r = await fetch(path, { method: body ? "POST" : "GET", headers: { "content-type": "application/json" },
      body: body ? JSON.stringify(body) : undefined });
    const data = await r.json();
    if (!r.ok) throw new Error((data.error && data.error.message) || r.statusText);
    return data;
  }

  function minutes(s) { const m = Math.max(1, Math.ceil(s / 60)); return m + (m === 1 ? " minute" : " minutes"); }

  async function refresh() {
    if (!started) return;
    const s = await call("/widget/api/state");
    const list = $("messages");
    s.messages.slice(lastCount).forEach((m) => {
      const li = document.createElement("li");
      li.className = m.role;
      const who = document.createElement("span");
      who.className = "who";
      who.textContent = m.role === "customer" ? "You" : m.role === "ai" ? "Assistant" : m.from;
      li.append(who, document.createTextNode(m.text));
      li.dataset.role = m.role;
      list.append(li);
    });
    if (s.messages.length !== lastCount) list.scrollTop = list.scrollHeight;
    lastCount = s.messages.length;
    // One handoff notice: the policy's message while the customer waits (the status line then
    // only keeps the place in line current), else a line of our own. The place in line and the
    // wait go once a person has joined; the end of the conversation is said.
    const waiting = s.state === "queued" || s.state === "offered";
    const notice = sessionStorage.getItem("baton-widget-notice");
    $("handoff-message").hidden = !(waiting && notice);
    $("handoff-message").textContent = waiting && notice ? notice : "";
    const hadPerson = s.messages.some((m) => m.role === "agent");
    const status = $("status");
    let text = "";
    if (waiting) {
      if (!notice) text = "You're being transferred to a person, who will see this whole conversation. ";
      if (s.position) text += (notice ? "Now number " : "You are number ") + s.position + " in line; the wait should be no more than " + minutes(s.estimated_wait_seconds) + ".";
      else if (notice) text = "A person will be with you shortly.";
    } else if (s.state === "assigned") {
      text = (s.agent_name || "A person") + " has joined the conversation.";
    } else if (s.state === "async_followup") {
      text = "A person will follow up with you.";
    } else if (s.state === "resolved") {
      text = "This conversation has ended.";
    } else if (s.state === "returned_to_ai" && hadPerson) {
      text = "You're back with the assistant.";
    }
    if (!waiting) sessionStorage.removeItem("baton-widget-notice");
    status.hidden = !text;
    status.textContent = text;
    status.dataset.state = s.state;
    $("cancel-box").hidden = !(s.state === "queued" || s.state === "offered");
    const later = $("later");
    later.hidden = !s.alternatives;
    const options = $("later-options");
    if (s.alternatives && !options.children.length) {
      const labels = { email: "Email me instead", callback: "Call me back", meeting: "Book a meeting" };
      s.alternatives.forEach((via) => {
        const b = document.createElement("button");
        b.type = "button"; b.className = "secondary"; b.textContent = labels[via] || via;
        b.addEventListener("click", async () => {
          try {
            const r = await call("/widget/api/followup", { via, contact: $("contact").value || undefined });
            later.hidden = true;
            $("status").hidden = false;
            $("status").textContent = r.meeting_link ? "Book a time here: " + r.meeting_link : "Thank you: a person will get back to you.";
          } catch (e) { $("error").textContent = e.message; }
        });
        options.append(b);
      });
    }
    $("rate").hidden = !s.ask_rating;
    $("person").disabled = ["queued", "offered", "assigned"].includes(s.state);
  }

  function follow() {
    if (source) source.close();
    source = new EventSource("/widget/api/events");
    source.onmessage = refresh;
    ["turn", "transition", "routing", "wait_update", "csat"].forEach((k) => source.addEventListener(k, refresh));
  }

  async function start() {
    if (!started) {
      const s = await call("/widget/api/start", {});
      started = true;
      sessionStorage.setItem("baton-widget-started", "1");
      sessionStorage.setItem("baton-widget-greeting", s.greeting);
    }
    $("greeting").textContent = sessionStorage.getItem("baton-widget-greeting") || "";
    follow();
    await refresh();
  }

  async function say(body) {
    $("error").textContent = "";
    try {
      await ready; // the conversation (and its cookie) exists before the first message goes
      const r = await call("/widget/api/say", body);
      const msg = r.customer && r.customer.customer_message;
      if (msg) sessionStorage.setItem("baton-widget-notice", msg);
      await refresh();
    } catch (e) { $("error").textContent = e.message; }
  }

  $("say").addEventListener("submit", (e) => {
    e.preventDefault();
    const text = $("text").value.trim();
    if (!text) return;
    $("text").value = "";
    say({ text });
  });
  $("person").addEventListener("click", () => say({ text: "", action: "request_human" }));
  $("cancel").addEventListener("click", () => say({ text: "", action: "cancel_handoff" }));
  document.querySelectorAll("#rate button").forEach((b) => b.addEventListener("click", async () => {
    try {
      await call("/widget/api/rate", { score: Number(b.dataset.score) });
      $("rate").hidden = true; $("thanks").hidden = false;
    } catch (e) { $("error").textContent = e.message; }
  }));
  const ready = start();
  ready.catch((e) => { $("error").textContent = e.message; });
})();
