// The handoff from both sides, in headless Chromium: a customer asks for a person in the
// widget; the escalation reaches an agent's console within a second, with its brief; the agent
// claims, sends the warm introduction and a reply; the customer sees both; the agent resolves;
// the customer rates. Also: a second agent cannot claim the same conversation, a signed-out
// visitor sees no conversation data, and an agent without the supervisor role cannot open the
// supervisor view. Screenshots for the README go to docs/screenshots/.
//
// Needs BATON_BIN (the `baton` binary) and Debian's chromium (CHROMIUM, default
// /usr/bin/chromium). Run: `npm ci && npm test` in e2e/ (`.ci/run` does).
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { spawn, execFileSync } from "node:child_process";
import { mkdtempSync, mkdirSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, dirname } from "node:path";
import { fileURLToPath } from "node:url";
import { chromium } from "playwright-core";

const BIN = process.env.BATON_BIN;
const CHROMIUM = process.env.CHROMIUM || "/usr/bin/chromium";
const SHOTS = join(dirname(fileURLToPath(import.meta.url)), "..", "..", "docs", "screenshots");
const PASSWORD = "correct-horse-battery";

let server;
let base;
let browser;

function addAgent(db, id, name, role) {
  execFileSync(BIN, ["agents", "add", id, "--name", name, "--role", role, "--password-stdin",
    "--database-url", `sqlite://${db}`], { input: PASSWORD + "\n" });
}

before(async () => {
  assert.ok(BIN, "set BATON_BIN to the baton binary");
  const dir = mkdtempSync(join(tmpdir(), "baton-e2e-"));
  const db = join(dir, "baton.db");
  addAgent(db, "ana", "Ana", "agent");
  addAgent(db, "bo", "Bo", "agent");
  addAgent(db, "sue", "Sue", "supervisor");
  server = spawn(BIN, ["serve", "--listen", "127.0.0.1:0", "--database-url", `sqlite://${db}`],
    { env: { ...process.env, BATON_LOG: "warn" }, stdio: ["ignore", "ignore", "pipe"] });
  base = await new Promise((resolve, reject) => {
    let seen = "";
    server.stderr.on("data", (chunk) => {
      seen += chunk;
      if (base) process.stderr.write("server: " + chunk);
      // Only a whole line: the address can arrive split over two chunks.
      const m = seen.match(/listening on (http:\/\/\S+)\r?\n/);
      if (m) resolve(m[1]);
    });
    server.on("exit", (code) => reject(new Error(`baton serve exited with ${code}: ${seen}`)));
    setTimeout(() => reject(new Error("baton serve did not start: " + seen)), 30000);
  });
  browser = await chromium.launch({ executablePath: CHROMIUM, headless: true, args: ["--no-sandbox"] });
  mkdirSync(SHOTS, { recursive: true });
});

after(async () => {
  if (browser) await browser.close();
  if (server) server.kill("SIGKILL");
});

/// A page that reports its script errors and failed requests (to see why, when a step times out).
async function newPage(options) {
  const page = await (await browser.newContext(options)).newPage();
  page.on("pageerror", (e) => console.error("page error:", e.message));
  page.on("requestfailed", (r) => console.error("request failed:", r.url(), r.failure() && r.failure().errorText));
  page.on("response", (r) => { if (r.status() >= 500) console.error("server error:", r.status(), r.url()); });
  return page;
}

async function signIn(id, viewport = { width: 1280, height: 800 }) {
  const page = await newPage({ viewport });
  await page.goto(base + "/console");
  await page.getByLabel("Agent id").fill(id);
  await page.getByLabel("Password").fill(PASSWORD);
  await page.getByRole("button", { name: "Sign in" }).click();
  await page.locator("#work").waitFor({ state: "visible" });
  return page;
}

test("a customer's request for a person reaches an agent with its brief, and back", async () => {
  const ana = await signIn("ana");
  await ana.getByLabel("Presence").selectOption("online");
  await ana.waitForTimeout(200);

  const customer = await newPage({ viewport: { width: 390, height: 844 } });
  // Every URL the widget asks for, to check that its token is in none of them.
  const widgetUrls = [];
  customer.on("request", (r) => widgetUrls.push(r.url()));
  await customer.goto(base + "/widget");
  await customer.locator("#greeting").filter({ hasText: "demo assistant" }).waitFor();
  // "Talk to a person" is the first thing the keyboard reaches.
  await customer.keyboard.press("Tab");
  assert.equal(await customer.evaluate(() => document.activeElement.id), "person");
  // Chat with the demo assistant, by keyboard.
  await customer.getByLabel("Your message").fill("My parcel still hasn't arrived, how long does shipping take?");
  await customer.keyboard.press("Enter");
  await customer.locator("#messages li.ai").first().waitFor();
  assert.match(await customer.locator("#messages li.ai").first().innerText(), /business days/);

  const asked = Date.now();
  await customer.getByRole("button", { name: "Talk to a person" }).click();
  // One handoff notice (the policy's message), and the status beside it (offered to Ana at
  // once: no line to wait in).
  await customer.locator("#handoff-message").filter({ hasText: "whole conversation" }).waitFor();
  await customer.locator("#status").filter({ hasText: "shortly" }).waitFor();
  const notices = await customer.locator("#handoff-message, #status, #messages li").allInnerTexts();
  assert.equal(notices.filter((t) => /whole conversation|being transferred/.test(t)).length, 1, notices.join("\n"));

  // Within a second the conversation is in Ana's console, offered to her.
  const item = ana.locator("#queues .queue-item").first();
  await item.waitFor({ timeout: 1000 });
  const seenAfter = Date.now() - asked;
  const conversation = await item.getAttribute("data-conversation");
  assert.ok(seenAfter <= 1000, `the escalation took ${seenAfter} ms to appear`);
  assert.match(await item.innerText(), /offered to you/);
  // Reasons in words, not codes.
  assert.match(await item.innerText(), /asked for a person/);
  assert.doesNotMatch(await item.innerText(), /human_requested/);
  await item.click();
  await ana.locator("#brief dt").first().waitFor();
  const brief = await ana.locator("#brief").innerText();
  assert.match(brief, /Why/);
  assert.match(brief, /Already tried|Summary/);
  // The summary is a list of labelled lines, not one paragraph.
  const lines = await ana.locator("#brief ul.summary li").allInnerTexts();
  assert.ok(lines.length >= 2 && lines[0].startsWith("Problem: "), lines.join("\n"));

  await ana.getByRole("button", { name: "Claim" }).click();
  await ana.locator("#owner-tools").waitFor({ state: "visible" });
  // A second agent cannot claim it: it is Ana's, not waiting in Bo's queues (403).
  const bo = await signIn("bo");
  const second = await bo.evaluate(async (id) => {
    const r = await fetch(`/v1/conversations/${id}/claim`, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify({ agent_id: "bo" }) });
    return r.status;
  }, conversation);
  assert.equal(second, 403);
  // Nor act as Ana.
  const impersonate = await bo.evaluate(async (id) => {
    const r = await fetch(`/v1/conversations/${id}/reply`, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify({ agent_id: "ana", text: "hi" }) });
    return r.status;
  }, conversation);
  assert.equal(impersonate, 403);

  // The warm introduction, then a reply.
  await ana.getByRole("button", { name: "Use the warm introduction" }).click();
  const intro = await ana.getByLabel("Reply to the customer").inputValue();
  assert.ok(intro.length > 20, intro);
  await ana.getByRole("button", { name: "Send reply" }).click();
  await ana.locator("#transcript li.agent").first().waitFor();
  await ana.getByLabel("Reply to the customer").fill("I've checked: your parcel is with the courier and arrives tomorrow.");
  await ana.getByRole("button", { name: "Send reply" }).click();
  await ana.locator("#transcript li.agent").nth(1).waitFor();
  await ana.screenshot({ path: join(SHOTS, "console.png"), fullPage: true });

  // The customer sees both, from Ana, live.
  await customer.locator("#messages li.agent").nth(1).waitFor({ timeout: 3000 });
  const fromAgent = await customer.locator("#messages li.agent").allInnerTexts();
  assert.equal(fromAgent.length, 2);
  assert.ok(fromAgent[0].startsWith("Ana") && fromAgent[0].includes(intro.slice(0, 20)), fromAgent[0]);
  assert.match(fromAgent[1], /arrives tomorrow/);
  await customer.locator("#status").filter({ hasText: "Ana has joined" }).waitFor();
  // Once a person has joined, nothing speaks of a line any more.
  assert.doesNotMatch(await customer.locator("main").innerText(), /in line|transferred/);
  await customer.screenshot({ path: join(SHOTS, "widget.png"), fullPage: true });
  assert.ok(widgetUrls.some((u) => u.includes("/widget/api/events")), widgetUrls.join("\n"));
  assert.ok(!widgetUrls.some((u) => u.includes("wt_") || u.includes("token=")), widgetUrls.join("\n"));

  // Ana resolves; the customer is asked for a rating and gives one.
  await ana.getByLabel("Resolution").selectOption("information_given");
  await ana.getByRole("button", { name: "Resolve" }).click();
  await customer.locator("#rate").waitFor({ state: "visible", timeout: 3000 });
  assert.match(await customer.locator("#status").innerText(), /conversation has ended/);
  await customer.getByRole("button", { name: "5", exact: true }).click();
  await customer.locator("#thanks").waitFor({ state: "visible" });
  const state = await ana.evaluate(async (id) => (await (await fetch(`/v1/conversations/${id}`)).json()), conversation);
  assert.equal(state.state, "resolved");
  assert.equal(state.disposition, "information_given");
  assert.ok(state.events.some((e) => e.kind === "csat" && e.reason.includes("5 of 5")));
});

test("the console's pages carry the hardening headers, and a page elsewhere cannot write with the agent's cookie", async () => {
  // A supervisor, who may read every conversation: a forged one would be visible.
  const sue = await signIn("sue");
  const page = await sue.goto(base + "/console");
  const h = page.headers();
  assert.match(h["content-security-policy"], /frame-ancestors 'none'/);
  assert.match(h["content-security-policy"], /script-src 'self'/);
  assert.equal(h["x-frame-options"], "DENY");
  assert.equal(h["x-content-type-options"], "nosniff");
  // The same browser, a page of no origin of ours: the classic cross-site form post of JSON
  // as text/plain (no preflight) carries no write.
  const other = await sue.context().newPage();
  await other.goto("about:blank");
  const answered = other.waitForEvent("response");
  await other.evaluate((target) => {
    const form = document.createElement("form");
    form.method = "POST";
    form.action = target + "/v1/conversations";
    form.enctype = "text/plain";
    const field = document.createElement("input");
    field.name = '{"id": "forged-by-another-site", "x": "';
    field.value = '"}';
    form.append(field);
    document.body.append(form);
    form.submit();
  }, base);
  const refused = await answered;
  assert.ok([401, 403].includes(refused.status()), `the form post got ${refused.status()}`);
  const stored = await sue.evaluate(async () => (await fetch("/v1/conversations/forged-by-another-site")).status);
  assert.equal(stored, 404, "the cross-site post created nothing");
});

test("a signed-out visitor sees no conversation data", async () => {
  const page = await newPage();
  await page.goto(base + "/console");
  await page.locator("#login").waitFor({ state: "visible" });
  assert.equal(await page.locator("#work").isVisible(), false);
  assert.equal(await page.locator(".queue-item").count(), 0);
  const status = await page.evaluate(async () => Promise.all(["/v1/queues", "/v1/supervisor", "/v1/events"].map(async (p) => (await fetch(p)).status)));
  assert.deepEqual(status, [401, 401, 401]);
  // Signing out ends access too.
  const ana = await signIn("ana");
  await ana.getByRole("button", { name: "Sign out" }).click();
  await ana.locator("#login").waitFor({ state: "visible" });
  assert.equal(await ana.evaluate(async () => (await fetch("/v1/queues")).status), 401);
});

test("only a supervisor opens the supervisor view", async () => {
  const bo = await signIn("bo");
  await bo.goto(base + "/console#supervisor");
  await bo.getByText("You do not have access to the supervisor view.").waitFor();
  assert.equal(await bo.locator("#sup-body table").count(), 0);
  const sue = await signIn("sue");
  await sue.goto(base + "/console#supervisor");
  await sue.locator("#sup-body table").waitFor();
  assert.match(await sue.locator("#sup-body").innerText(), /Recent escalations/);
  await sue.screenshot({ path: join(SHOTS, "supervisor.png"), fullPage: true });
});
