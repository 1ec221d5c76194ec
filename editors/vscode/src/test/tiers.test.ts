// Tier quick pick items: order, merging of configured tiers, descriptions.

import { strict as assert } from "node:assert";
import { test } from "node:test";

import { tierPickItems } from "../tiers";

test("defaults: the action's tier first, then its escalations, then the rest", () => {
  assert.deepEqual(
    tierPickItems({ action: "review" }).map((i) => i.tier),
    ["flash", "coder", "reasoning", "pro"],
  );
  assert.deepEqual(
    tierPickItems({ action: "generate" }).map((i) => i.tier),
    ["flash", "pro", "reasoning", "coder"],
  );
  const [flash, escalation, other] = tierPickItems({ action: "explain" });
  assert.deepEqual(flash, { tier: "flash", label: "Flash", description: "flash · deepseek-v4-flash", detail: "default · $0.25/M output tokens" });
  assert.equal(escalation?.detail, "escalation · $2.5/M output tokens");
  assert.equal(other?.detail?.startsWith("escalation"), false);
});

test("configured tiers and action settings are honoured", () => {
  const items = tierPickItems({
    action: "explain",
    tiers: { local: { model: "qwen2.5-coder:7b", label: "Local" }, flash: { outputUsdPerMillion: 0.3 }, broken: 5 },
    actionTier: "local",
    actionEscalate: ["flash", "nonexistent"],
  });
  assert.deepEqual(
    items.map((i) => i.tier),
    ["local", "flash", "nonexistent", "coder", "pro", "reasoning"],
  );
  assert.deepEqual(items[0], { tier: "local", label: "Local", description: "local · qwen2.5-coder:7b", detail: "default · price unknown" });
  assert.equal(items[1]?.detail, "escalation · $0.3/M output tokens");
  assert.equal(items[1]?.label, "Flash", "the default label stays when only the price is overridden");
  assert.equal(items[2]?.label, "nonexistent");
});
