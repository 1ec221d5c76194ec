// Command ids and the argument object sent with workspace/executeCommand.

import { strict as assert } from "node:assert";
import * as fs from "node:fs";
import * as path from "node:path";
import { test } from "node:test";

import { ACTIONS, actionOfCommand, buildCommandArguments, CLIENT_COMMANDS, menuKind, serverCommand } from "../actions";

test("server command names follow the design", () => {
  assert.deepEqual(ACTIONS.map(serverCommand), ["codetier.explain", "codetier.generate", "codetier.review"]);
  assert.equal(actionOfCommand("codetier.review"), "review");
  assert.equal(actionOfCommand("codetier.usage"), undefined);
  assert.equal(actionOfCommand("other.explain"), undefined);
});

test("arguments carry uri and range, and leave unset options out", () => {
  const range = { start: { line: 3, character: 0 }, end: { line: 7, character: 12 } };
  assert.deepEqual(buildCommandArguments({ uri: "file:///a.rs", range }), [{ uri: "file:///a.rs", range }]);
  assert.deepEqual(buildCommandArguments({ uri: "file:///a.rs", range, tier: "reasoning", fresh: true, diagnostics: ["rustc: E0308"] }), [
    { uri: "file:///a.rs", range, tier: "reasoning", fresh: true, diagnostics: ["rustc: E0308"] },
  ]);
  assert.deepEqual(buildCommandArguments({ uri: "u", range, tier: "", fresh: false, diagnostics: [] }), [{ uri: "u", range }]);
});

test("a selection made upwards is sent start-first; a cursor stays an empty range", () => {
  const up = { start: { line: 9, character: 4 }, end: { line: 2, character: 1 } };
  const [arg] = buildCommandArguments({ uri: "u", range: up });
  assert.deepEqual(arg.range, { start: { line: 2, character: 1 }, end: { line: 9, character: 4 } });
  const sameLine = { start: { line: 2, character: 8 }, end: { line: 2, character: 3 } };
  assert.deepEqual(buildCommandArguments({ uri: "u", range: sameLine })[0].range, { start: { line: 2, character: 3 }, end: { line: 2, character: 8 } });
  const cursor = { start: { line: 5, character: 2 }, end: { line: 5, character: 2 } };
  assert.deepEqual(buildCommandArguments({ uri: "u", range: cursor })[0].range, cursor);
});

test("every client command is contributed and reachable from the editor context menu", () => {
  const pkg = JSON.parse(fs.readFileSync(path.join(__dirname, "..", "..", "package.json"), "utf8")) as {
    contributes: { commands: { command: string }[]; menus: Record<string, { command?: string; submenu?: string }[]> };
  };
  const contributed = pkg.contributes.commands.map((c) => c.command);
  const inMenu = (pkg.contributes.menus["codetier.context"] ?? []).map((m) => m.command);
  assert.ok(pkg.contributes.menus["editor/context"]?.some((m) => m.submenu === "codetier.context"));
  for (const action of ACTIONS) {
    for (const id of [CLIENT_COMMANDS[action].run, CLIENT_COMMANDS[action].withTier]) {
      assert.ok(contributed.includes(id), `${id} not contributed`);
      assert.ok(inMenu.includes(id), `${id} not in the context menu`);
      assert.ok(!id.match(/^codetier\.(explain|generate|review|usage)$/), `${id} collides with a server command`);
    }
  }
});

test("the lightbulb shows codetier's actions in its first group; filtered menus keep the server's kinds", () => {
  assert.equal(menuKind("refactor.codetier.explain", undefined), "quickfix.codetier.explain");
  assert.equal(menuKind("refactor.codetier.review", undefined), "quickfix.codetier.review");
  // Quick fixes are quick fixes already; other servers' actions are not touched.
  assert.equal(menuKind("quickfix", undefined), undefined);
  assert.equal(menuKind("refactor.extract.function", undefined), undefined);
  assert.equal(menuKind(undefined, undefined), undefined);
  // "Refactor…" asks for refactorings only: the server's own kind must stay, or VS Code drops them.
  assert.equal(menuKind("refactor.codetier.generate", "refactor"), undefined);
});
