// Converts the extension's `codetier.*` settings into the server's configuration object.
// Free of `vscode` imports so it runs under `node --test`.

/**
 * Who may set a key, as the server's schema declares it (a Rust test checks package.json against it):
 * - `user`: only the user's own settings (`inspect().globalValue`); a workspace never decides where the
 *   key goes, what is sent or what is spent. These are machine-scoped in package.json.
 * - `any`: the most specific scope wins (folder, then workspace, then user).
 * - `enable`: the user's value, except that a workspace may turn it on (never off).
 * - `disable`: the user's value, except that a workspace may turn it off (never on).
 */
export type Trust = "user" | "any" | "enable" | "disable";

/** One contributed setting that the server understands. */
export interface SettingSpec {
  /** Key below `codetier.`, as VS Code spells it, e.g. `cache.memoryEntries`. */
  readonly key: string;
  readonly trust: Trust;
}

const user = (key: string): SettingSpec => ({ key, trust: "user" });
const anyScope = (key: string): SettingSpec => ({ key, trust: "any" });
const enable = (key: string): SettingSpec => ({ key, trust: "enable" });
const disable = (key: string): SettingSpec => ({ key, trust: "disable" });

/** Every `codetier.*` setting passed on to the server; package.json contributes each one. */
export const SERVER_SETTINGS: readonly SettingSpec[] = [
  user("baseUrl"),
  user("apiKeyEnv"),
  user("latencyBudgetMs"),
  user("commandReplyMs"),
  user("maxTokens"),
  user("tiers"),
  anyScope("actions.explain.tier"),
  anyScope("actions.explain.escalate"),
  user("actions.explain.autoEscalate"),
  anyScope("actions.generate.tier"),
  anyScope("actions.generate.escalate"),
  user("actions.generate.autoEscalate"),
  anyScope("actions.review.tier"),
  anyScope("actions.review.escalate"),
  user("actions.review.autoEscalate"),
  user("hedge.enabled"),
  user("hedge.minDelayMs"),
  user("hedge.maxDelayMs"),
  user("hedge.loopback"),
  user("retry.maxAttempts"),
  user("retry.baseDelayMs"),
  user("breaker.failureThreshold"),
  user("breaker.openMs"),
  user("cache.enabled"),
  user("cache.memoryEntries"),
  user("cache.memoryBytes"),
  user("cache.dir"),
  user("cache.ttlDays"),
  user("cache.maxDiskBytes"),
  user("privacy.exclude"),
  enable("privacy.redactSecrets"),
  anyScope("context.tokenBudget"),
  anyScope("context.surroundingLines"),
  user("log.level"),
  user("log.file"),
  disable("completion.enabled"),
  user("completion.menu"),
  user("completion.tier"),
  user("completion.mode"),
  user("completion.debounceMs"),
  user("completion.budgetMs"),
  user("completion.maxTokens"),
  user("team.redisUrlEnv"),
  user("team.keyPrefix"),
  user("team.shareCache"),
  user("team.dailyBudgetUsd"),
  user("team.timeoutMs"),
];

/** Settings that only the extension reads; they are never sent to the server. */
export const CLIENT_SETTINGS: readonly string[] = ["server.path", "server.extraEnv", "trace.server"];

/** The values VS Code's `WorkspaceConfiguration.inspect` reports for one key. */
export interface Inspected {
  readonly globalValue?: unknown;
  readonly workspaceValue?: unknown;
  readonly workspaceFolderValue?: unknown;
}

export type JsonObject = { [key: string]: unknown };

/** `memoryEntries` -> `memory_entries`; keys already in snake_case stay as they are. */
export function toSnakeCase(key: string): string {
  return key.replace(/([a-z0-9])([A-Z])/g, "$1_$2").replace(/([A-Z])([A-Z][a-z])/g, "$1_$2").toLowerCase();
}

/**
 * Builds `{ base_url, tiers: { flash: { model, ... } }, cache: { memory_entries }, ... }` from the
 * settings the user set explicitly. Defaults are left out on purpose: initializationOptions beat the
 * user's `config.toml`, so sending the extension's defaults would silently override that file.
 * The server treats initializationOptions as the user's own, so each key's trust is applied here.
 */
export function collectServerSettings(inspect: (key: string) => Inspected | undefined): JsonObject {
  const out: JsonObject = {};
  for (const spec of SERVER_SETTINGS) {
    const seen = inspect(spec.key);
    if (seen === undefined) {
      continue;
    }
    const value = chosen(spec.trust, seen);
    if (value === undefined || value === null || value === "") {
      continue;
    }
    const path = spec.key.split(".").map(toSnakeCase);
    setPath(out, path, spec.key === "tiers" ? convertTiers(value) : value);
  }
  return out;
}

/** Tier names are the user's own words and `extra_body` is sent to the provider verbatim: only field names convert. */
export function convertTiers(value: unknown): unknown {
  if (!isObject(value)) {
    return value;
  }
  const tiers: JsonObject = {};
  for (const [name, tier] of Object.entries(value)) {
    if (!isObject(tier)) {
      tiers[name] = tier;
      continue;
    }
    const fields: JsonObject = {};
    for (const [field, v] of Object.entries(tier)) {
      fields[toSnakeCase(field)] = v;
    }
    tiers[name] = fields;
  }
  return tiers;
}

/** The body of `workspace/didChangeConfiguration`, in the `{ codetier: { ... } }` form the server accepts. */
export function didChangeSettings(settings: JsonObject): { codetier: JsonObject } {
  return { codetier: settings };
}

/** The value the server may receive for a key of this trust. */
function chosen(trust: Trust, seen: Inspected): unknown {
  switch (trust) {
    case "user":
      return seen.globalValue;
    case "any":
      return firstDefined(seen.workspaceFolderValue, seen.workspaceValue, seen.globalValue);
    case "enable":
      return seen.workspaceFolderValue === true || seen.workspaceValue === true ? true : seen.globalValue;
    case "disable":
      return seen.workspaceFolderValue === false || seen.workspaceValue === false ? false : seen.globalValue;
  }
}

function firstDefined(...values: unknown[]): unknown {
  return values.find((v) => v !== undefined);
}

function isObject(v: unknown): v is JsonObject {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

function setPath(target: JsonObject, path: string[], value: unknown): void {
  let node = target;
  for (const part of path.slice(0, -1)) {
    const next = node[part];
    if (!isObject(next)) {
      const created: JsonObject = {};
      node[part] = created;
      node = created;
    } else {
      node = next;
    }
  }
  const last = path[path.length - 1];
  if (last !== undefined) {
    node[last] = value;
  }
}
