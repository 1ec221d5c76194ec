#!/usr/bin/env bash
# Headless Neovim end-to-end test of editors/nvim against the real codetier server and the fake provider.
#   CODETIER_BIN=target/debug/codetier FAKE_PROVIDER_BIN=target/debug/fake-provider editors/nvim/test/run.sh
# NVIM=/path/to/nvim picks the binary (default: nvim on PATH); CODETIER_TEST_MODE=enable (0.11+)
# starts the server with vim.lsp.config + vim.lsp.enable instead of setup(). test/run-all.sh runs
# it on Debian's 0.7.2 and on 0.12. CODETIER_TEST_LUA=e2e_inline.lua with
# CODETIER_TEST_FAKE_SCRIPT=inline-fake-script.json runs the inline completion test (0.12+) instead.
# Without nvim it reports SKIPPED loudly and exits 0, or 1 when
# $CI is set (CI must run it).
set -euo pipefail

here="$(cd "$(dirname "$0")" && pwd)"
plugin_dir="$(cd "$here/.." && pwd)"
overall_timeout="${CODETIER_TEST_TIMEOUT:-180}"
nvim="${NVIM:-nvim}"

if ! command -v "$nvim" >/dev/null 2>&1; then
  echo "==================================================================" >&2
  echo "SKIPPED: $nvim not installed (editors/nvim headless test did not run)" >&2
  echo "         install it with: apt-get install -y neovim" >&2
  echo "==================================================================" >&2
  if [ -n "${CI:-}" ]; then exit 1; fi
  exit 0
fi

fail() { echo "editors/nvim/test/run.sh: FAILED: $*" >&2; exit 1; }

[ -n "${CODETIER_BIN:-}" ] || fail "set CODETIER_BIN to the built server (e.g. target/debug/codetier)"
[ -n "${FAKE_PROVIDER_BIN:-}" ] || fail "set FAKE_PROVIDER_BIN to the built fake provider (e.g. target/debug/fake-provider)"
CODETIER_BIN="$(cd "$(dirname "$CODETIER_BIN")" && pwd)/$(basename "$CODETIER_BIN")"
FAKE_PROVIDER_BIN="$(cd "$(dirname "$FAKE_PROVIDER_BIN")" && pwd)/$(basename "$FAKE_PROVIDER_BIN")"
[ -x "$CODETIER_BIN" ] || fail "CODETIER_BIN=$CODETIER_BIN is not an executable"
[ -x "$FAKE_PROVIDER_BIN" ] || fail "FAKE_PROVIDER_BIN=$FAKE_PROVIDER_BIN is not an executable"

tmp="$(mktemp -d "${TMPDIR:-/tmp}/codetier-nvim.XXXXXX")"
fake_pid=""
cleanup() {
  if [ -n "$fake_pid" ]; then kill "$fake_pid" 2>/dev/null || true; wait "$fake_pid" 2>/dev/null || true; fi
  if [ -z "${CODETIER_TEST_KEEP:-}" ]; then rm -rf "$tmp"; else echo "kept $tmp" >&2; fi
}
trap cleanup EXIT

show_logs() {
  echo "---- fake provider stderr (last 40 lines) ----" >&2
  tail -n 40 "$tmp/fake.err" >&2 || true
  echo "---- Neovim LSP log with the server's stderr (last 80 lines) ----" >&2
  tail -n 80 "$tmp"/state/nvim/lsp.log "$tmp"/cache/nvim/lsp.log 2>/dev/null >&2 || true
}

# The fake provider prints its base URL as its first line of stdout.
# Created before the fake starts, so the loop below never reads a file that is not there yet.
: >"$tmp/fake.out"
"$FAKE_PROVIDER_BIN" --port 0 --script "$here/${CODETIER_TEST_FAKE_SCRIPT:-fake-script.json}" >>"$tmp/fake.out" 2>"$tmp/fake.err" &
fake_pid=$!
base_url=""
for _ in $(seq 1 100); do
  # Only a complete first line counts; the URL is its first http(s):// word.
  lines="$(wc -l <"$tmp/fake.out" 2>/dev/null || echo 0)"
  if [ "${lines:-0}" -ge 1 ]; then
    base_url="$(head -n 1 "$tmp/fake.out" | grep -oE 'https?://[^[:space:]]+' | head -n 1 || true)"
    [ -n "$base_url" ] || { show_logs; fail "the fake provider's first line holds no URL: $(head -n 1 "$tmp/fake.out")"; }
    break
  fi
  kill -0 "$fake_pid" 2>/dev/null || { show_logs; fail "the fake provider exited before printing its URL"; }
  sleep 0.1
done
[ -n "$base_url" ] || { show_logs; fail "the fake provider printed no base URL within 10 s"; }
echo "fake provider at $base_url"

mkdir -p "$tmp"/{config,cache,data,state,work}
cp "$here/fixture.rs" "$tmp/work/fixture.rs"
export XDG_CONFIG_HOME="$tmp/config" XDG_CACHE_HOME="$tmp/cache" XDG_DATA_HOME="$tmp/data" XDG_STATE_HOME="$tmp/state"
export CODETIER_BASE_URL="$base_url" GLOBAL_API_KEY="test-key" CODETIER_LOG="${CODETIER_LOG:-debug}"
export CODETIER_BIN CODETIER_NVIM_DIR="$plugin_dir"
export CODETIER_TEST_FILE="$tmp/work/fixture.rs" CODETIER_TEST_RESULTS="$tmp/results.json"

set +e
echo "$("$nvim" --version | head -n 1)${CODETIER_TEST_MODE:+, started with vim.lsp.$CODETIER_TEST_MODE}"
timeout --kill-after=10 "$overall_timeout" \
  "$nvim" --headless --clean -u "$here/minimal_init.lua" -c "luafile $here/${CODETIER_TEST_LUA:-e2e.lua}" </dev/null
status=$?
set -e

if [ "$status" -eq 124 ] || [ "$status" -eq 137 ]; then
  show_logs
  fail "Neovim did not finish within ${overall_timeout}s"
fi
if [ ! -s "$tmp/results.json" ]; then
  show_logs
  fail "Neovim exited with $status and wrote no results"
fi
if [ "$status" -ne 0 ]; then
  show_logs
  echo "---- results ----" >&2
  cat "$tmp/results.json" >&2; echo >&2
  fail "Neovim exited with $status (see the FAIL lines above)"
fi
echo "editors/nvim/test/run.sh: PASSED on $("$nvim" --version | head -n 1)${CODETIER_TEST_MODE:+ (vim.lsp.$CODETIER_TEST_MODE)} ($(grep -oE '"ok": ?true' "$tmp/results.json" | wc -l) checks)"
