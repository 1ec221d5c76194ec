// Locating the server binary and the message when it is missing.

import { strict as assert } from "node:assert";
import { test } from "node:test";

import { findOnPath, INSTALL_COMMAND, resolveServer } from "../serverPath";

const exists = (files: string[]) => (f: string) => files.includes(f);

test("the first codetier on PATH wins; empty PATH entries are skipped", () => {
  const found = findOnPath("codetier", "/usr/bin::/home/u/.cargo/bin:/opt/bin", "linux", undefined, exists(["/home/u/.cargo/bin/codetier", "/opt/bin/codetier"]));
  assert.equal(found, "/home/u/.cargo/bin/codetier");
  assert.equal(findOnPath("codetier", "/usr/bin", "linux", undefined, exists([])), undefined);
});

test("Windows tries PATHEXT extensions and splits on semicolons", () => {
  const found = findOnPath("codetier", "C:\\bin;C:\\cargo\\bin", "win32", ".COM;.EXE", exists(["C:\\cargo\\bin\\codetier.exe"]));
  assert.equal(found, "C:\\cargo\\bin\\codetier.exe");
});

test("a configured path must exist; ~ expands to home", () => {
  assert.deepEqual(resolveServer({ configured: "~/src/codetier/target/debug/codetier", platform: "linux", home: "/home/u", isExecutable: exists(["/home/u/src/codetier/target/debug/codetier"]) }), {
    kind: "found",
    command: "/home/u/src/codetier/target/debug/codetier",
  });
  const missing = resolveServer({ configured: "/nope/codetier", envPath: "/usr/bin", platform: "linux", isExecutable: exists(["/usr/bin/codetier"]) });
  assert.equal(missing.kind, "missing", "a wrong setting is reported, not silently replaced by PATH");
  if (missing.kind === "missing") assert.match(missing.message, /codetier\.server\.path.*\/nope\/codetier/);
});

test("missing on PATH: the message names the install command and the setting", () => {
  const r = resolveServer({ configured: "  ", envPath: "/usr/bin", platform: "linux", isExecutable: exists([]) });
  assert.equal(r.kind, "missing");
  if (r.kind !== "missing") return;
  assert.ok(r.message.includes(INSTALL_COMMAND));
  assert.ok(r.message.includes("codetier.server.path"));
  assert.deepEqual(resolveServer({ configured: null, envPath: "/usr/bin", platform: "linux", isExecutable: exists(["/usr/bin/codetier"]) }), { kind: "found", command: "/usr/bin/codetier" });
});
