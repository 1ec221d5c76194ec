// Settings conversion: camelCase settings become the server's snake_case schema, defaults stay out,
// and machine-only keys ignore workspace values.

import { strict as assert } from "node:assert";
import * as fs from "node:fs";
import * as path from "node:path";
import { test } from "node:test";

import { CLIENT_SETTINGS, collectServerSettings, convertTiers, didChangeSettings, Inspected, SERVER_SETTINGS, toSnakeCase } from "../settings";

function inspector(values: Record<string, Inspected>): (key: string) => Inspected | undefined {
  return (key) => values[key];
}

test("toSnakeCase converts camelCase and keeps snake_case", () => {
  const cases: [string, string][] = [
    ["baseUrl", "base_url"],
    ["latencyBudgetMs", "latency_budget_ms"],
    ["memoryEntries", "memory_entries"],
    ["outputUsdPerMillion", "output_usd_per_million"],
    ["model", "model"],
    ["output_usd_per_million", "output_usd_per_million"],
    ["ttlDays", "ttl_days"],
    ["HTTPProxy", "http_proxy"],
  ];
  for (const [input, expected] of cases) {
    assert.equal(toSnakeCase(input), expected, input);
  }
});

test("only explicitly set values are sent, nested by their dotted key", () => {
  const settings = collectServerSettings(
    inspector({
      latencyBudgetMs: { globalValue: 3000 },
      "cache.memoryEntries": { globalValue: 64 },
      "actions.review.escalate": { globalValue: ["reasoning"] },
      "privacy.redactSecrets": { globalValue: false },
      "hedge.enabled": {},
      "log.level": { globalValue: null },
    }),
  );
  assert.deepEqual(settings, {
    latency_budget_ms: 3000,
    cache: { memory_entries: 64 },
    actions: { review: { escalate: ["reasoning"] } },
    privacy: { redact_secrets: false },
  });
});

test("nothing set sends an empty object, so the user's config.toml is not overridden", () => {
  assert.deepEqual(collectServerSettings(() => ({})), {});
  assert.deepEqual(collectServerSettings(() => undefined), {});
});

test("the most specific scope wins for keys a workspace may set", () => {
  const settings = collectServerSettings(
    inspector({
      "context.tokenBudget": { globalValue: 100, workspaceValue: 200, workspaceFolderValue: 300 },
      "actions.review.tier": { globalValue: "flash", workspaceValue: "coder" },
    }),
  );
  assert.deepEqual(settings, { context: { token_budget: 300 }, actions: { review: { tier: "coder" } } });
});

test("a workspace cannot change tiers, prices, budgets, the cache or the log", () => {
  const settings = collectServerSettings(
    inspector({
      tiers: { workspaceValue: { flash: { model: "deepseek-r1", outputUsdPerMillion: 0, extraBody: { n: 64 } } } },
      maxTokens: { workspaceFolderValue: 1000000 },
      latencyBudgetMs: { workspaceValue: 600000 },
      "retry.maxAttempts": { workspaceValue: 10 },
      "cache.enabled": { workspaceValue: false },
      "log.level": { workspaceValue: "trace" },
      "privacy.exclude": { workspaceValue: [] },
    }),
  );
  assert.deepEqual(settings, {});
});

test("a workspace may turn secret redaction on, never off", () => {
  const on = collectServerSettings(inspector({ "privacy.redactSecrets": { globalValue: false, workspaceFolderValue: true } }));
  assert.deepEqual(on, { privacy: { redact_secrets: true } });
  const off = collectServerSettings(inspector({ "privacy.redactSecrets": { workspaceValue: false } }));
  assert.deepEqual(off, {});
  const user = collectServerSettings(inspector({ "privacy.redactSecrets": { globalValue: false, workspaceValue: false } }));
  assert.deepEqual(user, { privacy: { redact_secrets: false } });
});

test("a workspace may turn completions off, never on, and the rest of completion.* is the user's", () => {
  const off = collectServerSettings(inspector({ "completion.enabled": { globalValue: true, workspaceValue: false } }));
  assert.deepEqual(off, { completion: { enabled: false } });
  const on = collectServerSettings(inspector({ "completion.enabled": { workspaceFolderValue: true } }));
  assert.deepEqual(on, {});
  const user = collectServerSettings(
    inspector({
      "completion.mode": { globalValue: "fim", workspaceValue: "chat" },
      "completion.budgetMs": { workspaceValue: 60000 },
      "completion.menu": { globalValue: true },
    }),
  );
  assert.deepEqual(user, { completion: { mode: "fim", menu: true } });
});

test("a workspace cannot set where the key goes or which files the server writes", () => {
  const settings = collectServerSettings(
    inspector({
      baseUrl: { workspaceValue: "https://evil.example/v1", workspaceFolderValue: "https://evil.example/v1" },
      apiKeyEnv: { workspaceValue: "AWS_SECRET_ACCESS_KEY" },
      "cache.dir": { workspaceValue: "/tmp/x" },
      "log.file": { workspaceValue: "/tmp/log", globalValue: "/home/me/codetier.log" },
    }),
  );
  assert.deepEqual(settings, { log: { file: "/home/me/codetier.log" } });
  const user = collectServerSettings(inspector({ baseUrl: { globalValue: "http://127.0.0.1:11434/v1" }, apiKeyEnv: { globalValue: "OLLAMA_KEY" } }));
  assert.deepEqual(user, { base_url: "http://127.0.0.1:11434/v1", api_key_env: "OLLAMA_KEY" });
});

test("tier fields convert, tier names and extra_body contents do not", () => {
  const tiers = convertTiers({
    myFast: { model: "m", outputUsdPerMillion: 0.1, budgetMs: 900, extraBody: { topK: 3, thinking: { type: "disabled" } } },
    reasoning: { budget_ms: 60000 },
  });
  assert.deepEqual(tiers, {
    myFast: { model: "m", output_usd_per_million: 0.1, budget_ms: 900, extra_body: { topK: 3, thinking: { type: "disabled" } } },
    reasoning: { budget_ms: 60000 },
  });
  const settings = collectServerSettings(inspector({ tiers: { globalValue: { flash: { maxTokens: 512 } } } }));
  assert.deepEqual(settings, { tiers: { flash: { max_tokens: 512 } } });
});

test("didChangeConfiguration wraps the object in a codetier section", () => {
  assert.deepEqual(didChangeSettings({ max_tokens: 5 }), { codetier: { max_tokens: 5 } });
});

test("package.json contributes exactly the settings the code knows, with machine scope where required", () => {
  const pkg = JSON.parse(fs.readFileSync(path.join(__dirname, "..", "..", "package.json"), "utf8")) as {
    contributes: { configuration: { properties: Record<string, { scope?: string }> } };
  };
  const props = pkg.contributes.configuration.properties;
  const contributed = Object.keys(props).map((k) => k.replace(/^codetier\./, "")).sort();
  const known = [...SERVER_SETTINGS.map((s) => s.key), ...CLIENT_SETTINGS].sort();
  assert.deepEqual(contributed, known);
  for (const spec of SERVER_SETTINGS) {
    const scope = props[`codetier.${spec.key}`]?.scope;
    if (spec.trust === "user") {
      assert.ok(scope === "machine" || scope === "application", `${spec.key} must not be workspace-settable (scope ${String(scope)})`);
    } else {
      assert.ok(scope !== "machine" && scope !== "application", `${spec.key} needlessly user-scoped`);
    }
  }
  assert.equal(props["codetier.server.path"]?.scope, "machine");
});
