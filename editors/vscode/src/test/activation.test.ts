// Smoke test of the VS Code glue without VS Code: the compiled extension is loaded against a
// recording stand-in for the `vscode` module, activated with a server path that does not exist,
// and must register every contributed command and tell the user how to install the server.

import { strict as assert } from "node:assert";
import * as fs from "node:fs";
import Module from "node:module";
import * as path from "node:path";
import { test } from "node:test";

type Anything = Record<string, unknown>;

interface Recorder {
  commands: Map<string, (...args: unknown[]) => unknown>;
  errors: string[];
  infos: string[];
  settings: Record<string, unknown>;
}

function disposable(): Anything {
  return { dispose: () => undefined };
}

/** Any property not listed resolves to a class, which is all vscode-languageclient needs at load time. */
function lenient(target: Anything): Anything {
  return new Proxy(target, {
    get: (t, key: string | symbol) => {
      if (key in t) return t[key as string];
      if (typeof key === "symbol" || key === "then") return undefined;
      return class {};
    },
  });
}

function fakeVscode(rec: Recorder): Anything {
  return lenient({
    window: lenient({
      activeTextEditor: undefined,
      createOutputChannel: () => lenient({ appendLine: () => undefined, append: () => undefined, show: () => undefined, dispose: () => undefined }),
      createStatusBarItem: () => lenient({ show: () => undefined, hide: () => undefined, dispose: () => undefined }),
      showErrorMessage: (m: string) => {
        rec.errors.push(m);
        return Promise.resolve(undefined);
      },
      showInformationMessage: (m: string) => {
        rec.infos.push(m);
        return Promise.resolve(undefined);
      },
    }),
    workspace: lenient({
      registerTextDocumentContentProvider: disposable,
      onDidChangeConfiguration: disposable,
      getConfiguration: () => ({ get: (key: string) => rec.settings[key], inspect: () => undefined }),
    }),
    commands: lenient({
      registerCommand: (id: string, fn: (...args: unknown[]) => unknown) => {
        rec.commands.set(id, fn);
        return disposable();
      },
      executeCommand: () => Promise.resolve(undefined),
    }),
    env: lenient({ clipboard: { writeText: () => Promise.resolve() } }),
    EventEmitter: class {
      event = (): Anything => disposable();
      fire(): void {}
      dispose(): void {}
    },
    MarkdownString: class {
      constructor(public value = "") {}
      appendMarkdown(s: string): void {
        this.value += s;
      }
    },
    StatusBarAlignment: { Left: 1, Right: 2 },
    ViewColumn: { Beside: -2 },
  });
}

test("activation without a server registers every command and explains how to install it", async () => {
  const rec: Recorder = { commands: new Map(), errors: [], infos: [], settings: { "server.path": "/nonexistent/codetier" } };
  const stub = fakeVscode(rec);
  const loader = Module as unknown as { _load: (request: string, ...rest: unknown[]) => unknown };
  const original = loader._load;
  loader._load = (request: string, ...rest: unknown[]) => (request === "vscode" ? stub : original(request, ...rest));
  try {
    const ext = (await import(path.join(__dirname, "..", "extension.js"))) as { activate: (ctx: unknown) => Promise<void> };
    await ext.activate({ subscriptions: [] });
  } finally {
    loader._load = original;
  }
  const pkg = JSON.parse(fs.readFileSync(path.join(__dirname, "..", "..", "package.json"), "utf8")) as { contributes: { commands: { command: string }[] } };
  for (const { command } of pkg.contributes.commands) {
    assert.ok(rec.commands.has(command), `${command} is contributed but not registered`);
  }
  assert.equal(rec.errors.length, 1, rec.errors.join("\n"));
  assert.match(rec.errors[0] ?? "", /codetier\.server\.path.*\/nonexistent\/codetier/);
  assert.match(rec.errors[0] ?? "", /cargo install --path server --locked/);

  // With no editor open an action says what to do instead of failing.
  await rec.commands.get("codetier.reviewSelection")?.();
  assert.match(rec.infos.at(-1) ?? "", /open a file and select code to review selection/);
});
