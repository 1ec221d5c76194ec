// The tier quick pick: which tiers exist, in which order, and how each is described.
// Free of `vscode` imports so it runs under `node --test`.

import { Action } from "./actions";

/** Tiers of the design's default configuration, used when the user configured none in settings. */
export const DEFAULT_TIERS: Readonly<Record<string, { model: string; label: string; outputUsdPerMillion?: number }>> = {
  flash: { model: "deepseek-v4-flash", label: "Flash", outputUsdPerMillion: 0.25 },
  coder: { model: "qwen3-coder-30b", label: "Qwen3-Coder-30B", outputUsdPerMillion: 0.35 },
  pro: { model: "deepseek-v4-pro", label: "DeepSeek V4 Pro", outputUsdPerMillion: 0.78 },
  reasoning: { model: "deepseek-r1", label: "DeepSeek-R1", outputUsdPerMillion: 2.5 },
};

/** The design's default `[actions.*]`. */
export const DEFAULT_ACTIONS: Readonly<Record<Action, { tier: string; escalate: readonly string[] }>> = {
  explain: { tier: "flash", escalate: ["reasoning"] },
  generate: { tier: "flash", escalate: ["pro", "reasoning"] },
  review: { tier: "flash", escalate: ["coder", "reasoning"] },
};

export interface TierPickItem {
  /** The tier name sent as `tier` in the command argument. */
  tier: string;
  label: string;
  description: string;
  detail?: string;
}

export interface TierPickInput {
  action: Action;
  /** `codetier.tiers` as set by the user (camelCase or snake_case fields), if any. */
  tiers?: unknown;
  /** `codetier.actions.<action>.tier` / `.escalate` as set by the user, if any. */
  actionTier?: string;
  actionEscalate?: readonly string[];
}

/**
 * Items for "… with Tier": the action's first tier, then its escalations in order, then every other
 * known tier. Tiers from settings are merged over the defaults, since the server merges them too.
 */
export function tierPickItems(input: TierPickInput): TierPickItem[] {
  const known = new Map<string, { model?: string; label?: string; price?: number }>();
  for (const [name, t] of Object.entries(DEFAULT_TIERS)) {
    known.set(name, { model: t.model, label: t.label, price: t.outputUsdPerMillion });
  }
  if (isObject(input.tiers)) {
    for (const [name, t] of Object.entries(input.tiers)) {
      if (!isObject(t)) {
        continue;
      }
      const base = known.get(name) ?? {};
      known.set(name, {
        model: str(t.model) ?? base.model,
        label: str(t.label) ?? base.label,
        price: num(t.outputUsdPerMillion) ?? num(t.output_usd_per_million) ?? base.price,
      });
    }
  }
  const defaults = DEFAULT_ACTIONS[input.action];
  const first = input.actionTier ?? defaults.tier;
  const escalate = input.actionEscalate ?? defaults.escalate;
  const order = [first, ...escalate, ...[...known.keys()].sort()];
  const seen = new Set<string>();
  const items: TierPickItem[] = [];
  for (const tier of order) {
    if (seen.has(tier)) {
      continue;
    }
    seen.add(tier);
    const t = known.get(tier) ?? {};
    const role = tier === first ? "default" : escalate.includes(tier) ? "escalation" : undefined;
    const price = t.price === undefined ? "price unknown" : `$${t.price}/M output tokens`;
    items.push({
      tier,
      label: t.label ?? tier,
      description: [tier, t.model].filter((s) => s !== undefined && s !== "").join(" · "),
      detail: role === undefined ? price : `${role} · ${price}`,
    });
  }
  return items;
}

function isObject(v: unknown): v is { [key: string]: unknown } {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

function str(v: unknown): string | undefined {
  return typeof v === "string" && v !== "" ? v : undefined;
}

function num(v: unknown): number | undefined {
  return typeof v === "number" && Number.isFinite(v) ? v : undefined;
}
