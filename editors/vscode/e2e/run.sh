#!/usr/bin/env bash
# VS Code end to end: the project's own .vsix installed into code-server (VS Code 1.100), driven
# headless by Debian's chromium through playwright-core, against the real server and the fake
# provider. Screenshots of each step go to target/artifacts/vscode/. Never skips: a missing tool is
# installed (e2e/install.sh) or the run fails.
#   CODETIER_BIN=target/debug/codetier FAKE_PROVIDER_BIN=target/debug/fake-provider editors/vscode/e2e/run.sh
# CODETIER_TEST_KEEP=1 keeps the temporary directory (workspace, user data, logs).
set -euo pipefail

here="$(cd "$(dirname "$0")" && pwd)"
ext="$(cd "$here/.." && pwd)"
root="$(cd "$ext/../.." && pwd)"
target="${CARGO_TARGET_DIR:-$root/target}"
tools="$target/editor-tools"
artifacts="$target/artifacts/vscode"
overall_timeout="${CODETIER_TEST_TIMEOUT:-420}"

fail() { echo "editors/vscode/e2e/run.sh: FAILED: $*" >&2; exit 1; }
absolute() { (cd "$(dirname "$1")" && printf '%s/%s' "$(pwd)" "$(basename "$1")"); }

[ -n "${CODETIER_BIN:-}" ] || fail "set CODETIER_BIN to the built server (e.g. target/debug/codetier)"
[ -n "${FAKE_PROVIDER_BIN:-}" ] || fail "set FAKE_PROVIDER_BIN to the built fake provider (e.g. target/debug/fake-provider)"
CODETIER_BIN="$(absolute "$CODETIER_BIN")"
FAKE_PROVIDER_BIN="$(absolute "$FAKE_PROVIDER_BIN")"
[ -x "$CODETIER_BIN" ] || fail "CODETIER_BIN=$CODETIER_BIN is not an executable"
[ -x "$FAKE_PROVIDER_BIN" ] || fail "FAKE_PROVIDER_BIN=$FAKE_PROVIDER_BIN is not an executable"

TOOLS="$tools" "$here/install.sh"
code_server="$tools/node_modules/.bin/code-server"

# The extension's package: reused when nothing it is built from is newer, else ci.sh's full flow
# (clean install, typecheck, lint, unit tests, package).
version="$(node -p 'require(process.argv[1]).version' "$ext/package.json")"
vsix="$ext/codetier-$version.vsix"
if [ ! -s "$vsix" ] || [ -n "$(find "$ext/src" "$ext/package.json" "$ext/package-lock.json" "$ext/tsconfig.json" -newer "$vsix" -print -quit)" ]; then
  echo "==> packaging the extension (editors/vscode/ci.sh)"
  "$ext/ci.sh"
fi
[ -s "$vsix" ] || fail "$vsix was not built"

tmp="$(mktemp -d "${TMPDIR:-/tmp}/codetier-vscode.XXXXXX")"
fake_pid=""
code_pid=""
cleanup() {
  # code-server runs in its own process group (setsid): its extension host and the codetier
  # server go with it.
  if [ -n "$code_pid" ]; then kill -- "-$code_pid" 2>/dev/null || true; wait "$code_pid" 2>/dev/null || true; fi
  if [ -n "$fake_pid" ]; then kill "$fake_pid" 2>/dev/null || true; wait "$fake_pid" 2>/dev/null || true; fi
  mkdir -p "$artifacts/logs"
  cp "$tmp/code-server.log" "$tmp/fake.err" "$artifacts/logs/" 2>/dev/null || true
  [ -d "$tmp/user/logs" ] && cp -r "$tmp/user/logs/." "$artifacts/logs/user-data" 2>/dev/null || true
  if [ -z "${CODETIER_TEST_KEEP:-}" ]; then rm -rf "$tmp"; else echo "kept $tmp" >&2; fi
}
trap cleanup EXIT

rm -rf "$artifacts"
mkdir -p "$artifacts" "$tmp"/{user/User,ext,work,config,cache,data,state}
cp "$here/fixture/stats.js" "$tmp/work/stats.js"

# The fake provider prints its base URL as the first line of its stdout.
"$FAKE_PROVIDER_BIN" --port 0 --script "$here/fake-script.json" >"$tmp/fake.out" 2>"$tmp/fake.err" &
fake_pid=$!
base_url=""
for _ in $(seq 1 100); do
  if [ "$(wc -l <"$tmp/fake.out")" -ge 1 ]; then
    base_url="$(head -n 1 "$tmp/fake.out" | grep -oE 'https?://[^[:space:]]+' | head -n 1 || true)"
    break
  fi
  kill -0 "$fake_pid" 2>/dev/null || fail "the fake provider exited before printing its URL: $(cat "$tmp/fake.err")"
  sleep 0.1
done
[ -n "$base_url" ] || fail "the fake provider printed no base URL within 10 s"
echo "fake provider at $base_url"

# User settings as a new user would have them, plus the tiers that route each action (and inline
# completions, on a tier of their own) to a model the fake provider answers in kind.
# Noise that would cover the editor is turned off.
cat >"$tmp/user/User/settings.json" <<JSON
{
  "codetier.server.path": "$CODETIER_BIN",
  "codetier.actions.review.tier": "coder",
  "codetier.actions.generate.tier": "pro",
  "codetier.tiers": { "complete": { "model": "codetier-complete", "label": "Complete" } },
  "codetier.completion.tier": "complete",
  "workbench.startupEditor": "none",
  "workbench.tips.enabled": false,
  "workbench.enableExperiments": false,
  "security.workspace.trust.enabled": false,
  "telemetry.telemetryLevel": "off",
  "update.mode": "none",
  "extensions.autoCheckUpdates": false,
  "extensions.autoUpdate": false,
  "chat.commandCenter.enabled": false,
  "chat.disableAIFeatures": true,
  "editor.minimap.enabled": false,
  "window.commandCenter": false
}
JSON

export XDG_CONFIG_HOME="$tmp/config" XDG_CACHE_HOME="$tmp/cache" XDG_DATA_HOME="$tmp/data" XDG_STATE_HOME="$tmp/state"
export CODETIER_BASE_URL="$base_url" GLOBAL_API_KEY="test-key"
"$code_server" --user-data-dir "$tmp/user" --extensions-dir "$tmp/ext" --install-extension "$vsix" >"$tmp/install.log" 2>&1 \
  || { cat "$tmp/install.log" >&2; fail "code-server could not install $vsix"; }

port="$(node -e 'const s = require("net").createServer().listen(0, "127.0.0.1", () => { console.log(s.address().port); s.close(); })')"
# Its TypeScript server, extension host and IPC sockets go in the run's own folder, not /tmp.
mkdir -p "$tmp/tmpdir" "$tmp/run" && chmod 700 "$tmp/run"
TMPDIR="$tmp/tmpdir" XDG_RUNTIME_DIR="$tmp/run" setsid "$code_server" --auth none --bind-addr "127.0.0.1:$port" --disable-telemetry --disable-update-check \
  --disable-workspace-trust --disable-getting-started-override \
  --user-data-dir "$tmp/user" --extensions-dir "$tmp/ext" "$tmp/work" >"$tmp/code-server.log" 2>&1 &
code_pid=$!
up=""
for _ in $(seq 1 120); do
  if node -e 'require("http").get(process.argv[1], (r) => process.exit(r.statusCode === 200 ? 0 : 1)).on("error", () => process.exit(1))' \
    "http://127.0.0.1:$port/healthz" 2>/dev/null; then up=1; break; fi
  kill -0 "$code_pid" 2>/dev/null || { cat "$tmp/code-server.log" >&2; fail "code-server exited"; }
  sleep 0.5
done
[ -n "$up" ] || { cat "$tmp/code-server.log" >&2; fail "code-server did not answer on 127.0.0.1:$port within 60 s"; }
echo "code-server $("$code_server" --version 2>/dev/null | tail -n 1) at http://127.0.0.1:$port"

set +e
CODE_URL="http://127.0.0.1:$port" WORKSPACE="$tmp/work" SETTINGS="$tmp/user/User/settings.json" \
  ARTIFACTS="$artifacts" PLAYWRIGHT="$tools/node_modules/playwright-core" CHROMIUM="$(command -v chromium)" \
  timeout --kill-after=10 "$overall_timeout" node "$here/e2e.js"
status=$?
set -e
if [ "$status" -eq 124 ] || [ "$status" -eq 137 ]; then
  fail "the browser script did not finish within ${overall_timeout}s (screenshots in $artifacts)"
fi
[ "$status" -eq 0 ] || fail "see the FAIL lines above; screenshots and logs in $artifacts"
echo "editors/vscode/e2e/run.sh: PASSED ($(grep -c '"ok": true' "$artifacts/results.json") checks; screenshots in $artifacts)"
