// Reading command results and usage reports; status bar and markdown text.

import { strict as assert } from "node:assert";
import { test } from "node:test";

import { Answer, answerMarkdown, completionToggle, formatLatency, formatUsd, INITIAL_STATUS, parseCommandResult, parseUsage, statusText, usageTooltip, withAnswer, withUsage } from "../result";

const explainResult = {
  action: "explain",
  tier: "flash",
  tier_label: "Flash",
  model: "deepseek-v4-flash",
  cached: false,
  latency_ms: 812,
  usage: { input_tokens: 420, output_tokens: 96 },
  cost_usd: 0.000024,
  text: "**Off by one**: the loop reads `v[len]`.",
  findings: [],
};

test("an answer is read with every field of the design", () => {
  const r = parseCommandResult(explainResult, "codetier.explain");
  assert.equal(r.kind, "answer");
  if (r.kind !== "answer") return;
  assert.equal(r.action, "explain");
  assert.equal(r.tierLabel, "Flash");
  assert.equal(r.model, "deepseek-v4-flash");
  assert.equal(r.latencyMs, 812);
  assert.deepEqual(r.usage, { input_tokens: 420, output_tokens: 96 });
  assert.equal(r.costUsd, 0.000024);
  assert.equal(r.text, explainResult.text);
});

test("pending, null and junk results are told apart", () => {
  assert.deepEqual(parseCommandResult({ pending: true, message: "later" }), { kind: "pending", message: "later" });
  assert.equal(parseCommandResult({ pending: true }).kind, "pending");
  assert.equal(parseCommandResult(null).kind, "empty");
  assert.equal(parseCommandResult("text").kind, "empty");
  const r = parseCommandResult({ tier: 3, findings: [1, { message: "m", start_line: 2 }], latency_ms: "x" }, "codetier.review");
  assert.equal(r.kind, "answer");
  if (r.kind !== "answer") return;
  assert.equal(r.action, "review");
  assert.equal(r.tier, "");
  assert.equal(r.latencyMs, undefined);
  assert.deepEqual(r.findings, [{ start_line: 2, end_line: undefined, severity: undefined, message: "m", replacement: null }]);
});

test("status text shows last tier, latency and session cost", () => {
  assert.equal(statusText(INITIAL_STATUS), "$(sparkle) codetier");
  const answer = parseCommandResult(explainResult);
  assert.equal(answer.kind, "answer");
  if (answer.kind !== "answer") return;
  let s = withAnswer(INITIAL_STATUS, answer);
  assert.equal(statusText(s), "$(sparkle) codetier · Flash · 812 ms · $0.00002");
  s = withAnswer(s, { ...answer, tierLabel: "DeepSeek-R1", latencyMs: 14_250, costUsd: 0.0125 });
  assert.equal(statusText(s), "$(sparkle) codetier · DeepSeek-R1 · 14.3 s · $0.0125");
  s = withAnswer(s, { ...answer, cached: true });
  assert.equal(statusText(s), "$(sparkle) codetier · Flash · cached · $0.0125", "a cache hit costs nothing");
  assert.equal(statusText({ ...s, busy: 1 }).startsWith("$(loading~spin)"), true);
});

test("an unknown cost is not shown as zero", () => {
  const answer = parseCommandResult({ ...explainResult, cost_usd: null });
  if (answer.kind !== "answer") throw new Error("expected an answer");
  assert.equal(statusText(withAnswer(INITIAL_STATUS, answer)), "$(sparkle) codetier · Flash · 812 ms");
});

test("usage report: server total replaces the running sum; missing total is summed", () => {
  const report = parseUsage({
    per_tier: [
      { tier: "flash", requests: 3, cache_hits: 1, input_tokens: 900, output_tokens: 300, cost_usd: 0.000076, saved_usd: 0.000025 },
      { tier: "reasoning", requests: 1, cache_hits: 0, input_tokens: 800, output_tokens: 2000, cost_usd: 0.005 },
    ],
    total_cost_usd: 0.005075,
    total_saved_usd: 0.000025,
  });
  assert.ok(report);
  assert.equal(report.perTier.length, 2);
  assert.equal(statusText(withUsage(INITIAL_STATUS, report)), "$(sparkle) codetier · $0.0051");
  const tip = usageTooltip(report);
  assert.match(tip, /\| flash \| 3 \| 1 \| 900 \| 300 \| \$0\.00008 \|/);
  assert.match(tip, /Total: \$0\.0051, saved by the cache: \$0\.00003/);
  const summed = parseUsage({ per_tier: [{ tier: "a", cost_usd: 0.5 }, { tier: "b", cost_usd: 0.25 }, { tier: "c" }] });
  assert.equal(summed?.totalCostUsd, 0.75);
  assert.equal(parseUsage({ nothing: 1 }), undefined);
  assert.match(usageTooltip(undefined), /No requests yet/);
});

test("formatting of latency and dollars", () => {
  assert.equal(formatLatency(45.4), "45 ms");
  assert.equal(formatLatency(2500), "2.5 s");
  assert.equal(formatUsd(0), "$0.00");
  assert.equal(formatUsd(0.00031), "$0.00031");
  assert.equal(formatUsd(0.000003), "$0.000003", "a tiny cost is not shown as zero");
  assert.equal(formatUsd(0.0123), "$0.0123");
  assert.equal(formatUsd(1.254), "$1.25");
});

test("answer markdown names the action, tier, model, place and findings", () => {
  const review = parseCommandResult({
    action: "review",
    tier: "coder",
    tier_label: "Qwen3-Coder-30B",
    model: "qwen3-coder-30b",
    cached: true,
    cost_usd: 0.0001,
    text: "Two problems.",
    findings: [
      { start_line: 4, end_line: 6, severity: "warning", message: "unchecked index" },
      { start_line: 9, end_line: 9, severity: "error", message: "use after move" },
    ],
  });
  if (review.kind !== "answer") throw new Error("expected an answer");
  const md = answerMarkdown(review, "src/lib.rs:5");
  assert.match(md, /^# Review selection\n/);
  assert.match(md, /\*src\/lib\.rs:5\* · Qwen3-Coder-30B — qwen3-coder-30b · cached · \$0\.00 this time\n/);
  assert.match(md, /- \*\*warning\*\* lines 5–7: unchecked index/);
  assert.match(md, /- \*\*error\*\* line 10: use after move/);
  const explain = parseCommandResult(explainResult);
  if (explain.kind !== "answer") throw new Error("expected an answer");
  assert.match(answerMarkdown(explain, "a.rs:1"), /# Explain bug[\s\S]*\*\*Off by one\*\*/);
});

test("a cached answer's header agrees with the status bar: nothing this time, and the session total", () => {
  // What the server sends for a cache hit: cost 0, whatever the first asking cost.
  const hit = parseCommandResult({ ...explainResult, cached: true, cost_usd: 0 });
  if (hit.kind !== "answer") throw new Error("expected an answer");
  let status = withAnswer(INITIAL_STATUS, parseCommandResult(explainResult) as Answer);
  status = withAnswer(status, hit);
  assert.equal(statusText(status), "$(sparkle) codetier · Flash · cached · $0.00002");
  const md = answerMarkdown(hit, "a.js:4", status.sessionCostUsd);
  assert.match(md, /· cached · 420 in \/ 96 out tokens · \$0\.00 this time · session \$0\.00002\n/);
  assert.doesNotMatch(md, /first asked/);
  // A fresh answer shows its own cost and the total.
  assert.match(answerMarkdown(parseCommandResult(explainResult) as Answer, "a.js:4", 0.000024), /· 812 ms · 420 in \/ 96 out tokens · \$0\.00002 · session \$0\.00002\n/);
});

test("the completion toggle says what a click does", () => {
  assert.match(completionToggle(true).tooltip, /on: click to turn them off/);
  assert.match(completionToggle(false).text, /circle-slash/);
  assert.ok(!completionToggle(true).text.includes("codetier"), "the word finds the status item");
});
