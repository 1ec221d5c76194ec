// VS Code end to end: the packaged extension in code-server, driven by headless Chromium through
// playwright-core, against the real codetier server and the fake provider. run.sh starts all of it
// and passes: CODE_URL, WORKSPACE, SETTINGS (the user settings.json), ARTIFACTS, PLAYWRIGHT (the
// playwright-core directory), CHROMIUM. Each step saves a screenshot; any failed check exits 1.
"use strict";

const fs = require("node:fs");
const path = require("node:path");

const env = (name) => {
  const v = process.env[name];
  if (!v) throw new Error(`${name} is not set (run e2e/run.sh)`);
  return v;
};
const { chromium } = require(env("PLAYWRIGHT"));
const CODE_URL = env("CODE_URL");
const WORKSPACE = env("WORKSPACE");
const SETTINGS = env("SETTINGS");
const ARTIFACTS = env("ARTIFACTS");
/** Every wait is bounded; a step that needs longer has failed. */
const WAIT_MS = Number(process.env.CODETIER_E2E_WAIT_MS || 30000);

const checks = [];
let page;
let shot = 0;

function check(name, ok, detail) {
  checks.push({ name, ok: Boolean(ok), detail: ok ? undefined : detail });
  process.stdout.write(`${ok ? "ok  " : "FAIL"} ${name}${ok || detail === undefined ? "" : `: ${typeof detail === "string" ? detail : JSON.stringify(detail)}`}\n`);
  return Boolean(ok);
}

async function screenshot(name) {
  shot += 1;
  const file = path.join(ARTIFACTS, `${String(shot).padStart(2, "0")}-${name}.png`);
  await page.screenshot({ path: file });
  process.stdout.write(`     screenshot ${path.relative(process.cwd(), file)}\n`);
}

/** Polls `probe` until it returns a truthy value or `ms` pass; returns the last value. */
async function until(probe, ms = WAIT_MS, every = 200) {
  const deadline = Date.now() + ms;
  let value;
  for (;;) {
    try {
      value = await probe();
    } catch {
      value = undefined;
    }
    if (value || Date.now() > deadline) return value;
    await page.waitForTimeout(every);
  }
}

const statusBar = () => page.locator("#workbench\\.parts\\.statusbar").innerText();
const codetierStatus = async () => {
  const items = await page.locator("#workbench\\.parts\\.statusbar .statusbar-item").allInnerTexts();
  return items.find((t) => t.includes("codetier")) ?? "";
};
/** The active editor's visible text (the fixture fits on screen), with its non-breaking spaces made plain. */
const editorText = async () =>
  (await page.locator(".editor-group-container.active .monaco-editor .view-lines").first().innerText()).replace(/\u00a0/g, " ");
/** Inline completion ghost text in the active editor (same-line and following-line parts). */
const ghostText = async () =>
  (await page.locator(".editor-group-container.active .monaco-editor .ghost-text-decoration, .editor-group-container.active .monaco-editor .ghost-text").allInnerTexts())
    .join("")
    .replace(/\u00a0/g, " ");
/** What the fake provider answers on the completion tier (fake-script.json). */
const SUGGESTION = "average([7, 8, 9]);";
const toasts = () => page.locator(".notifications-toasts .notification-toast").allInnerTexts();
const tabs = () => page.locator(".tabs-container .tab").allInnerTexts();

/** Text of every webview frame (markdown previews), concatenated. */
async function webviewText() {
  const texts = [];
  for (const frame of page.frames()) {
    if (frame === page.mainFrame()) continue;
    try {
      texts.push(await frame.locator("body").innerText({ timeout: 500 }));
    } catch {
      // A frame that went away or has no body yet.
    }
  }
  return texts.join("\n");
}

async function focusEditor(file) {
  // The first editor group holds the source file; previews open beside it.
  await page.keyboard.press("Control+1");
  const tab = page.locator(".tabs-container .tab", { hasText: file }).first();
  await tab.click({ timeout: WAIT_MS });
  await page.waitForTimeout(200);
}

/** Selects lines `first`..`last` (1-based, whole lines) in the active editor. */
async function selectLines(first, last) {
  await page.keyboard.press("Control+G");
  await page.keyboard.type(String(first));
  await page.keyboard.press("Enter");
  await page.keyboard.press("Home");
  await page.keyboard.press("Home"); // the first Home stops at the indentation
  for (let i = first; i < last; i++) await page.keyboard.press("Shift+ArrowDown");
  await page.keyboard.press("Shift+End");
  await page.waitForTimeout(300);
}

async function palette(command) {
  await page.keyboard.press("F1");
  const input = page.locator(".quick-input-widget input");
  await input.waitFor({ state: "visible", timeout: WAIT_MS });
  await input.fill(`>${command}`);
  const row = page.locator(".quick-input-widget .monaco-list-row", { hasText: command }).first();
  await row.waitFor({ state: "visible", timeout: WAIT_MS });
  await page.keyboard.press("Enter");
}

/** Opens the lightbulb menu (Ctrl+.) and returns its rows: headers and actions, in order. */
async function lightbulb() {
  await page.keyboard.press("Control+.");
  const widget = page.locator(".action-widget");
  await widget.waitFor({ state: "visible", timeout: WAIT_MS });
  // Providers answer one by one; wait until codetier's entries are in.
  await until(async () => (await widget.innerText()).includes("Explain bug"));
  return (await widget.locator(".monaco-list-row").allInnerTexts()).map((t) => t.trim()).filter((t) => t !== "");
}

/** Picks an action of the open lightbulb menu with the keyboard, as a user does (a mouse click
 * lands on the widget's pointer guard while it settles). */
async function pickFromLightbulb(title) {
  const actions = page.locator(".action-widget .monaco-list-row.action");
  const titles = (await actions.allInnerTexts()).map((t) => t.trim());
  const index = titles.findIndex((t) => t.startsWith(title));
  if (index < 0) throw new Error(`no "${title}" in the lightbulb menu: ${JSON.stringify(titles)}`);
  const focused = () => page.locator(".action-widget .monaco-list-row.action.focused").innerText();
  // The menu opens with its first action focused.
  await until(async () => (await focused()).trim() !== "", 5000);
  for (let moves = 0; moves < titles.length && !(await focused()).trim().startsWith(title); moves++) {
    await page.keyboard.press("ArrowDown");
    await page.waitForTimeout(50);
  }
  if (!(await focused()).trim().startsWith(title)) throw new Error(`could not focus "${title}" in the lightbulb menu`);
  await page.keyboard.press("Enter");
}

async function closeToasts() {
  await page.keyboard.press("Escape");
  for (const close of await page.locator(".notifications-toasts .codicon-notifications-clear").all()) {
    await close.click().catch(() => undefined);
  }
}

async function main() {
  const browser = await chromium.launch({
    executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
    args: ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-dev-shm-usage"],
  });
  try {
    page = await browser.newPage({ viewport: { width: 1400, height: 860 } });
    page.setDefaultTimeout(WAIT_MS);
    await page.goto(`${CODE_URL}/?folder=${encodeURIComponent(WORKSPACE)}`);
    await page.locator(".monaco-workbench").waitFor({ timeout: 90000 });
    await steps();
  } catch (err) {
    check("the end-to-end script ran without an exception", false, String(err && err.stack ? err.stack : err));
    if (page) await screenshot("failure").catch(() => undefined);
  } finally {
    await browser.close();
  }
}

async function steps() {
  const source = fs.readFileSync(path.join(WORKSPACE, "stats.js"), "utf8");

  // Open the file: the extension starts the server and shows its status bar item.
  await page.keyboard.press("Control+P");
  await page.locator(".quick-input-widget input").fill("stats.js");
  await page.locator(".quick-input-widget .monaco-list-row", { hasText: "stats.js" }).first().waitFor();
  await page.keyboard.press("Enter");
  check("stats.js opens in the editor", await until(async () => (await editorText()).includes("function largest")));
  check("the status bar shows codetier once the server runs", await until(async () => (await codetierStatus()) !== ""), await statusBar());
  await screenshot("open");

  // 1. Explain from the command palette, on the selected function.
  await selectLines(2, 8);
  await palette("codetier: Explain Bug");
  const explained = await until(async () => (await tabs()).some((t) => t.includes("explanation-1.md")));
  check("palette: Explain Bug opens the explanation beside the code", explained, await tabs());
  check(
    "palette: the explanation shows the model's text",
    await until(async () => (await webviewText()).includes("Off by one")),
    (await webviewText()).slice(0, 400),
  );
  const firstStatus = await until(async () => {
    const s = await codetierStatus();
    return /Flash · \d+ ms · \$0\.0\d+/.test(s) ? s : undefined;
  });
  check("status bar: last tier, latency and session cost", firstStatus, await codetierStatus());
  await screenshot("explain-from-palette");
  await closeToasts();

  // 2. The lightbulb: codetier's actions head the menu; the same range answers from the cache.
  await focusEditor("stats.js");
  await selectLines(2, 8);
  const rows = await lightbulb();
  await screenshot("lightbulb-menu");
  const firstHeader = rows[0];
  const explainRow = rows.findIndex((r) => r.startsWith("Explain bug (Flash)"));
  const otherGroup = rows.findIndex((r, i) => i > 0 && !r.startsWith("Explain bug") && !r.startsWith("Generate function") && !r.startsWith("Review selection") && !r.startsWith("Apply codetier fix"));
  check("lightbulb: the first group is Quick Fix", firstHeader === "Quick Fix", rows);
  check(
    "lightbulb: codetier's actions come before the built-in refactorings",
    explainRow > 0 && (otherGroup === -1 || explainRow < otherGroup) && !rows.slice(0, explainRow).includes("More Actions..."),
    rows,
  );
  check("lightbulb: the escalation is offered once an answer exists", rows.some((r) => r.startsWith("Explain bug with DeepSeek-R1")), rows);
  await pickFromLightbulb("Explain bug (Flash)");
  check("lightbulb: Explain bug opens a second explanation", await until(async () => (await tabs()).some((t) => t.includes("explanation-2.md"))), await tabs());
  const cachedHeader = await until(async () => {
    const text = await webviewText();
    const line = text.split("\n").find((l) => l.includes("cached") && l.includes("this time"));
    return line;
  });
  const sessionCost = (await codetierStatus()).match(/\$0\.\d+/)?.[0];
  check("cached explanation: costs $0.00 this time", cachedHeader && cachedHeader.includes("$0.00 this time"), cachedHeader);
  check(
    "cached explanation: shows the session total the status bar shows",
    cachedHeader && sessionCost && cachedHeader.includes(`session ${sessionCost}`),
    { cachedHeader, sessionCost },
  );
  check("cached explanation: no made-up first cost", cachedHeader && !cachedHeader.includes("first asked"), cachedHeader);
  await screenshot("explain-from-lightbulb-cached");
  await closeToasts();

  // 3. Escalation, picked from the lightbulb.
  await focusEditor("stats.js");
  await selectLines(2, 8);
  await lightbulb();
  await pickFromLightbulb("Explain bug with DeepSeek-R1");
  check(
    "escalation: DeepSeek-R1 answers",
    await until(async () => (await webviewText()).includes("reasoning tier")),
    (await webviewText()).slice(-400),
  );
  check("escalation: the status bar names DeepSeek-R1", await until(async () => (await codetierStatus()).includes("DeepSeek-R1")), await codetierStatus());
  await screenshot("escalation");
  await closeToasts();

  // 4. Review to the Problems panel, then its quick fix applied.
  await focusEditor("stats.js");
  await selectLines(2, 8);
  await palette("codetier: Review Selection");
  const reviewToast = await until(async () => (await toasts()).find((t) => t.includes("review by")));
  check("review: says how many findings went to the Problems panel", reviewToast && reviewToast.includes("1 finding in the Problems panel"), reviewToast);
  await page.keyboard.press("Control+Shift+M");
  const problem = await until(async () => {
    const text = await page.locator(".markers-panel").innerText();
    return text.includes("reads past the end") ? text : undefined;
  });
  check("review: the finding is in the Problems panel, from codetier", problem && problem.includes("codetier"), problem);
  await screenshot("review-problems");
  await closeToasts();
  await focusEditor("stats.js");
  await selectLines(4, 4);
  await page.keyboard.press("Home");
  const fixRows = await lightbulb();
  const fixTitle = fixRows.find((r) => r.startsWith("Apply codetier fix: `i <= values.length` reads past the end"));
  check("review: its quick fix is offered in the lightbulb", fixTitle, fixRows);
  if (fixTitle) await pickFromLightbulb(fixTitle);
  check(
    "review: the quick fix is applied",
    await until(async () => (await editorText()).includes("i < values.length; i++")),
    (await editorText()).split("\n").slice(0, 6),
  );
  await screenshot("quick-fix-applied");
  await page.keyboard.press("Escape");

  // 5. Generate over the doc comment and the stub: applied, the comment kept, then saved.
  await focusEditor("stats.js");
  // Line numbers from the fixture: the quick fix above replaced one line with one line.
  const lines = source.split("\n");
  const docLine = lines.findIndex((l) => l.includes("The largest of")) + 1;
  const stubEnd = lines.findIndex((l, i) => i >= docLine && l.trim() === "}") + 1;
  await selectLines(docLine, stubEnd);
  await palette("codetier: Generate Function");
  check(
    "generate: the code is applied in place",
    await until(async () => (await editorText()).includes("Math.max(...values)")),
    (await editorText()).split("\n").slice(docLine - 2, stubEnd + 2),
  );
  const after = await editorText();
  check("generate: the doc comment above the stub is kept", after.includes("/** The largest of `values`; undefined when there are none. */"), after);
  check("generate: the stub's body is gone", !after.includes("not implemented"), after);
  await page.keyboard.press("Control+S");
  const saved = await until(() => {
    const disk = fs.readFileSync(path.join(WORKSPACE, "stats.js"), "utf8");
    return disk !== source && disk.includes("Math.max(...values)") ? disk : undefined;
  });
  check("generate: saved to disk with the fix and the generated code", saved && saved.includes("i < values.length") && saved.includes("/** The largest of"), saved);
  const status = await codetierStatus();
  check("status bar: the generating tier and the session cost", /DeepSeek V4 Pro · \d+ ms · \$0\.\d+/.test(status), status);
  await screenshot("generated-and-saved");

  // 6. Inline completions: typing at the end of the file shows codetier's suggestion as ghost
  // text, Tab accepts it, and the status bar toggle turns them off.
  await focusEditor("stats.js");
  await page.keyboard.press("Control+End");
  await page.keyboard.press("End");
  await page.keyboard.press("Enter");
  await page.keyboard.type("const mean = ", { delay: 30 });
  const shown = await until(async () => ((await ghostText()).includes(SUGGESTION) ? await ghostText() : undefined));
  check("inline: the suggestion is shown as ghost text", shown, { ghost: await ghostText(), text: (await editorText()).split("\n").slice(-3) });
  await screenshot("inline-ghost-text");
  await page.keyboard.press("Tab");
  const accepted = await until(async () => (await ghostText()) === "" && (await editorText()).includes(`const mean = ${SUGGESTION}`));
  check("inline: Tab accepts the suggestion into the document", accepted, { ghost: await ghostText(), text: (await editorText()).split("\n").slice(-3) });
  const toggle = page.locator("#workbench\\.parts\\.statusbar .statusbar-item", { hasText: "inline" }).first();
  check("inline: the status bar shows the completions toggle", await until(() => toggle.isVisible()), await statusBar());
  await toggle.click();
  const turnedOff = await until(() => JSON.parse(fs.readFileSync(SETTINGS, "utf8"))["codetier.completion.enabled"] === false);
  check("inline: the toggle turns completions off in the user settings", turnedOff, fs.readFileSync(SETTINGS, "utf8"));
  await focusEditor("stats.js");
  await page.keyboard.press("Control+End");
  await page.keyboard.press("End");
  await page.keyboard.press("Enter");
  await page.keyboard.type("const other = ", { delay: 30 });
  // Absence is waited for as long as the suggestion took to appear when on, and then some.
  await page.waitForTimeout(3000);
  check("inline: no ghost text once turned off", (await ghostText()) === "", await ghostText());
  await screenshot("inline-turned-off");
  await page.keyboard.press("Escape");

  // 7. The server cannot be found (a wrong codetier.server.path, as a new user may have it): on
  // the next start the message names the setting and the install command.
  const settings = JSON.parse(fs.readFileSync(SETTINGS, "utf8"));
  settings["codetier.server.path"] = "/nonexistent/codetier";
  fs.writeFileSync(SETTINGS, JSON.stringify(settings, null, 2));
  await palette("Developer: Reload Window");
  await page.locator(".monaco-workbench").waitFor({ timeout: 90000 });
  const missing = await until(async () => (await toasts()).find((t) => t.includes("/nonexistent/codetier")));
  check("server not found: the message names the configured path", missing, await toasts());
  check("server not found: the message gives the install command", missing && missing.includes("cargo install --path server --locked"), missing);
  check("server not found: it offers to open the setting", missing && missing.includes("Open Settings"), missing);
  await screenshot("server-not-found");
}

main()
  .catch((err) => check("the browser started and closed", false, String(err && err.stack ? err.stack : err)))
  .finally(() => {
    fs.writeFileSync(path.join(ARTIFACTS, "results.json"), JSON.stringify(checks, null, 2));
    const failed = checks.filter((c) => !c.ok);
    process.stdout.write(`${checks.length - failed.length} of ${checks.length} checks passed\n`);
    process.exitCode = failed.length === 0 && checks.length > 0 ? 0 : 1;
  });
