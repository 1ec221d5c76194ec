// Converts the extension's `codetier.*` settings into the server's configuration object.
// Free of `vscode` imports so it runs under `node --test`.

/** One contributed setting that the server understands. */
export interface SettingSpec {
  /** Key below `codetier.`, as VS Code spells it, e.g. `cache.memoryEntries`. */
  readonly key: string;
  /**
   * Machine-only keys decide where the API key is sent or which files the server writes:
   * a workspace must never set them (the server refuses them in `.codetier.toml` too).
   */
  readonly machineOnly: boolean;
}

const machine = (key: string): SettingSpec => ({ key, machineOnly: true });
const anyScope = (key: string): SettingSpec => ({ key, machineOnly: false });

/** Every `codetier.*` setting passed on to the server; package.json contributes each one. */
export const SERVER_SETTINGS: readonly SettingSpec[] = [
  machine("baseUrl"),
  machine("apiKeyEnv"),
  anyScope("latencyBudgetMs"),
  anyScope("commandReplyMs"),
  anyScope("maxTokens"),
  anyScope("tiers"),
  anyScope("actions.explain.tier"),
  anyScope("actions.explain.escalate"),
  anyScope("actions.generate.tier"),
  anyScope("actions.generate.escalate"),
  anyScope("actions.review.tier"),
  anyScope("actions.review.escalate"),
  anyScope("hedge.enabled"),
  anyScope("hedge.minDelayMs"),
  anyScope("hedge.maxDelayMs"),
  anyScope("retry.maxAttempts"),
  anyScope("retry.baseDelayMs"),
  anyScope("breaker.failureThreshold"),
  anyScope("breaker.openMs"),
  anyScope("cache.enabled"),
  anyScope("cache.memoryEntries"),
  anyScope("cache.memoryBytes"),
  machine("cache.dir"),
  anyScope("cache.ttlDays"),
  anyScope("cache.maxDiskBytes"),
  anyScope("privacy.exclude"),
  anyScope("privacy.redactSecrets"),
  anyScope("context.tokenBudget"),
  anyScope("context.surroundingLines"),
  anyScope("log.level"),
  machine("log.file"),
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
 * Machine-only keys take the user (global) value alone, whatever a workspace says.
 */
export function collectServerSettings(inspect: (key: string) => Inspected | undefined): JsonObject {
  const out: JsonObject = {};
  for (const spec of SERVER_SETTINGS) {
    const seen = inspect(spec.key);
    if (seen === undefined) {
      continue;
    }
    const value = spec.machineOnly ? seen.globalValue : firstDefined(seen.workspaceFolderValue, seen.workspaceValue, seen.globalValue);
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
