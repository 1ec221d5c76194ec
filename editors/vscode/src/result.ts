// Reading command results and usage reports, and the text the status bar and views show.
// Free of `vscode` imports so it runs under `node --test`.

import { Action, ACTION_TITLES, actionOfCommand } from "./actions";

export interface TokenUsage {
  input_tokens?: number;
  output_tokens?: number;
}

export interface Finding {
  start_line?: number;
  end_line?: number;
  severity?: string;
  message?: string;
  replacement?: string | null;
}

/** The result of `codetier.explain|generate|review` once the answer is there. */
export interface Answer {
  kind: "answer";
  action?: Action;
  tier: string;
  tierLabel: string;
  model: string;
  cached: boolean;
  latencyMs?: number;
  usage?: TokenUsage;
  costUsd?: number;
  text: string;
  findings: Finding[];
  applied?: boolean;
  message?: string;
}

/** `{ pending: true }`: the answer arrives later through edits, diagnostics or a message. */
export interface Pending {
  kind: "pending";
  message: string;
}

export type CommandResult = Answer | Pending | { kind: "empty" };

/** Tolerant reading of whatever the server returned; unknown fields are ignored. */
export function parseCommandResult(value: unknown, command?: string): CommandResult {
  if (!isObject(value)) {
    return { kind: "empty" };
  }
  if (value.pending === true) {
    return { kind: "pending", message: str(value.message) ?? "codetier is still working; the answer will appear when it is ready." };
  }
  const tier = str(value.tier) ?? "";
  const action = actionOfCommand(`codetier.${str(value.action) ?? ""}`) ?? (command ? actionOfCommand(command) : undefined);
  return {
    kind: "answer",
    action,
    tier,
    tierLabel: str(value.tier_label) ?? tier,
    model: str(value.model) ?? "",
    cached: value.cached === true,
    latencyMs: num(value.latency_ms),
    usage: isObject(value.usage) ? { input_tokens: num(value.usage.input_tokens), output_tokens: num(value.usage.output_tokens) } : undefined,
    costUsd: num(value.cost_usd),
    text: str(value.text) ?? "",
    findings: Array.isArray(value.findings) ? value.findings.filter(isObject).map(toFinding) : [],
    applied: typeof value.applied === "boolean" ? value.applied : undefined,
    message: str(value.message),
  };
}

export interface TierUsage {
  tier: string;
  requests: number;
  cacheHits: number;
  inputTokens: number;
  outputTokens: number;
  costUsd?: number;
  savedUsd?: number;
}

export interface UsageReport {
  perTier: TierUsage[];
  totalCostUsd?: number;
  totalSavedUsd?: number;
}

/** Reads the `codetier.usage` result (`{ per_tier: [...], total_cost_usd, total_saved_usd }`). */
export function parseUsage(value: unknown): UsageReport | undefined {
  if (!isObject(value) || !Array.isArray(value.per_tier)) {
    return undefined;
  }
  const perTier = value.per_tier.filter(isObject).map((t) => ({
    tier: str(t.tier) ?? "?",
    requests: num(t.requests) ?? 0,
    cacheHits: num(t.cache_hits) ?? 0,
    inputTokens: num(t.input_tokens) ?? 0,
    outputTokens: num(t.output_tokens) ?? 0,
    costUsd: num(t.cost_usd),
    savedUsd: num(t.saved_usd),
  }));
  const summed = perTier.reduce<number | undefined>((acc, t) => (t.costUsd === undefined ? acc : (acc ?? 0) + t.costUsd), undefined);
  return { perTier, totalCostUsd: num(value.total_cost_usd) ?? summed, totalSavedUsd: num(value.total_saved_usd) };
}

/** What the status bar remembers between results. */
export interface StatusState {
  lastTierLabel?: string;
  lastLatencyMs?: number;
  lastCached?: boolean;
  /** Session cost: the server's usage report when known, else the sum of the results seen. */
  sessionCostUsd: number;
  costKnown: boolean;
  busy: number;
}

export const INITIAL_STATUS: StatusState = { sessionCostUsd: 0, costKnown: false, busy: 0 };

/** Folds one answer into the status. A cached answer cost nothing this time. */
export function withAnswer(state: StatusState, answer: Answer): StatusState {
  const cost = answer.cached ? 0 : answer.costUsd;
  return {
    ...state,
    lastTierLabel: answer.tierLabel || answer.tier,
    lastLatencyMs: answer.latencyMs,
    lastCached: answer.cached,
    sessionCostUsd: state.sessionCostUsd + (cost ?? 0),
    costKnown: state.costKnown || cost !== undefined,
  };
}

/** Replaces the running sum with the server's own total. */
export function withUsage(state: StatusState, report: UsageReport): StatusState {
  if (report.totalCostUsd === undefined) {
    return state;
  }
  return { ...state, sessionCostUsd: report.totalCostUsd, costKnown: true };
}

/** Status bar text, e.g. `$(sparkle) Flash · 812 ms · $0.0012`. */
export function statusText(state: StatusState): string {
  const parts = ["$(sparkle) codetier"];
  if (state.busy > 0) {
    parts[0] = "$(loading~spin) codetier";
  }
  if (state.lastTierLabel !== undefined) {
    parts.push(state.lastTierLabel);
    if (state.lastCached === true) {
      parts.push("cached");
    } else if (state.lastLatencyMs !== undefined) {
      parts.push(formatLatency(state.lastLatencyMs));
    }
  }
  if (state.costKnown) {
    parts.push(formatUsd(state.sessionCostUsd));
  }
  return parts.join(" · ");
}

/** Markdown tooltip: one row per tier from the last usage report. */
export function usageTooltip(report: UsageReport | undefined): string {
  const lines = ["**codetier** — session usage", ""];
  if (report === undefined || report.perTier.length === 0) {
    lines.push("No requests yet. Run *codetier: Show Usage and Cost* to refresh.");
    return lines.join("\n");
  }
  lines.push("| tier | requests | cached | input tok | output tok | cost |", "|---|---:|---:|---:|---:|---:|");
  for (const t of report.perTier) {
    const cost = t.costUsd === undefined ? "unknown" : formatUsd(t.costUsd);
    lines.push(`| ${t.tier} | ${t.requests} | ${t.cacheHits} | ${t.inputTokens} | ${t.outputTokens} | ${cost} |`);
  }
  let total = `Total: ${report.totalCostUsd === undefined ? "unknown" : formatUsd(report.totalCostUsd)}`;
  if (report.totalSavedUsd !== undefined && report.totalSavedUsd > 0) {
    total += `, saved by the cache: ${formatUsd(report.totalSavedUsd)}`;
  }
  lines.push("", total);
  return lines.join("\n");
}

/** `812 ms`, `2.4 s`. */
export function formatLatency(ms: number): string {
  return ms < 1000 ? `${Math.round(ms)} ms` : `${(ms / 1000).toFixed(1)} s`;
}

/** Small sums need more digits: `$0.000003`, `$0.00031`, `$0.0123`, `$1.25`. */
export function formatUsd(usd: number): string {
  if (usd === 0) {
    return "$0.00";
  }
  if (usd < 0.00001) {
    // A few tokens of a cheap model: not "$0.00000", which reads as free.
    return `$${usd.toFixed(6)}`;
  }
  if (usd < 0.001) {
    return `$${usd.toFixed(5)}`;
  }
  if (usd < 1) {
    return `$${usd.toFixed(4)}`;
  }
  return `$${usd.toFixed(2)}`;
}

/**
 * The read-only markdown document shown for an answer (explanations, mostly). `sessionCostUsd`,
 * when known, is the session's total as the status bar shows it, so the two never disagree: a
 * cached answer costs nothing this time, and the server reports no cost of the first asking.
 */
export function answerMarkdown(answer: Answer, where: string, sessionCostUsd?: number): string {
  const title = answer.action ? ACTION_TITLES[answer.action] : "codetier";
  const meta = [answer.tierLabel || answer.tier, answer.model].filter((s) => s !== "").join(" — ");
  const facts: string[] = [];
  if (answer.cached) {
    facts.push("cached");
  } else if (answer.latencyMs !== undefined) {
    facts.push(formatLatency(answer.latencyMs));
  }
  if (answer.usage?.output_tokens !== undefined) {
    facts.push(`${answer.usage.input_tokens ?? "?"} in / ${answer.usage.output_tokens} out tokens`);
  }
  if (answer.cached) {
    facts.push(`${formatUsd(0)} this time`);
  } else if (answer.costUsd !== undefined) {
    facts.push(formatUsd(answer.costUsd));
  }
  if (sessionCostUsd !== undefined) {
    facts.push(`session ${formatUsd(sessionCostUsd)}`);
  }
  const lines = [`# ${title}`, "", `*${where}* · ${meta}${facts.length > 0 ? ` · ${facts.join(" · ")}` : ""}`, "", answer.text.trim()];
  if (answer.findings.length > 0 && answer.action !== "explain") {
    lines.push("", "## Findings", "");
    for (const f of answer.findings) {
      const span = f.start_line === undefined ? "" : f.end_line !== undefined && f.end_line !== f.start_line ? `lines ${f.start_line + 1}–${f.end_line + 1}` : `line ${f.start_line + 1}`;
      lines.push(`- **${f.severity ?? "note"}** ${span}: ${f.message ?? ""}`);
    }
  }
  return `${lines.join("\n")}\n`;
}

function toFinding(f: { [key: string]: unknown }): Finding {
  return {
    start_line: num(f.start_line),
    end_line: num(f.end_line),
    severity: str(f.severity),
    message: str(f.message),
    replacement: str(f.replacement) ?? null,
  };
}

function isObject(v: unknown): v is { [key: string]: unknown } {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

function str(v: unknown): string | undefined {
  return typeof v === "string" ? v : undefined;
}

function num(v: unknown): number | undefined {
  return typeof v === "number" && Number.isFinite(v) ? v : undefined;
}

/**
 * The status bar toggle of inline completions: its text and tooltip for the setting's value. The
 * text does not say "codetier": that word finds the status item (`statusText`), here and in the e2e run.
 */
export function completionToggle(enabled: boolean): { text: string; tooltip: string } {
  return enabled
    ? { text: "$(sparkle) inline", tooltip: "codetier inline completions are on: click to turn them off" }
    : { text: "$(circle-slash) inline", tooltip: "codetier inline completions are off: click to turn them on" };
}
