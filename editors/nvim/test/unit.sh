#!/usr/bin/env bash
# Headless checks of the Neovim plugin that need no server: the pure helpers and that the plugin
# loads and defines its commands. NVIM=/path/to/nvim picks the binary (default: nvim on PATH).
set -euo pipefail
here="$(cd "$(dirname "$0")/.." && pwd)"
nvim="${NVIM:-nvim}"
if ! command -v "$nvim" >/dev/null 2>&1; then
  echo "SKIPPED: $nvim not installed (editors/nvim unit checks did not run)" >&2
  if [ -n "${CI:-}" ]; then exit 1; fi
  exit 0
fi
"$nvim" --headless --clean --cmd "set rtp^=$here" -c "luafile $here/test/unit.lua"
"$nvim" --headless --clean --cmd "set rtp^=$here" -c "runtime plugin/codetier.lua" \
  -c 'lua require("codetier").setup({ cmd = { "codetier-not-installed", "--stdio" } })' \
  -c 'lua for _, c in ipairs({"CodetierExplain","CodetierGenerate","CodetierReview","CodetierUsage"}) do assert(vim.fn.exists(":" .. c) == 2, c) end' \
  -c 'lua io.stdout:write("plugin loads on " .. tostring(vim.version().major) .. "." .. tostring(vim.version().minor) .. "." .. tostring(vim.version().patch) .. "\n")' \
  -c 'qall!'

# The plugin's whole flow (key map, ranged command, Lua API, tier pick, applyEdit, diagnostics, sync)
# against a stand-in server with canned answers; test/run.sh repeats it against the real server.
tmp="$(mktemp -d "${TMPDIR:-/tmp}/codetier-nvim-unit.XXXXXX")"
trap 'rm -rf "$tmp"' EXIT
mkdir -p "$tmp"/{cache,state,work}
cp "$here/test/fixture.rs" "$tmp/work/fixture.rs"
XDG_CACHE_HOME="$tmp/cache" XDG_STATE_HOME="$tmp/state" XDG_CONFIG_HOME="$tmp/config" XDG_DATA_HOME="$tmp/data" \
  CODETIER_NVIM_DIR="$here" CODETIER_BIN="$here/test/stand_in_server.py" CODETIER_TEST_WAIT_MS=5000 \
  CODETIER_TEST_FILE="$tmp/work/fixture.rs" CODETIER_TEST_RESULTS="$tmp/results.json" \
  timeout 60 "$nvim" --headless --clean -u "$here/test/minimal_init.lua" -c "luafile $here/test/e2e.lua" </dev/null \
  >"$tmp/out.txt" 2>&1 || { cat "$tmp/out.txt" >&2; echo "unit.sh: plugin flow against the stand-in server FAILED" >&2; exit 1; }
echo "unit.sh: plugin flow against the stand-in server passed ($(grep -c '^ok ' "$tmp/out.txt") checks)"
