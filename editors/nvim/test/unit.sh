#!/usr/bin/env bash
# Headless checks of the Neovim plugin that need no server: the pure helpers and that the plugin
# loads and defines its commands.
set -euo pipefail
here="$(cd "$(dirname "$0")/.." && pwd)"
if ! command -v nvim >/dev/null 2>&1; then
  echo "SKIPPED: nvim not installed (editors/nvim unit checks did not run)" >&2
  if [ -n "${CI:-}" ]; then exit 1; fi
  exit 0
fi
nvim --headless --clean --cmd "set rtp^=$here" -c "luafile $here/test/unit.lua"
nvim --headless --clean --cmd "set rtp^=$here" -c "runtime plugin/codetier.lua" \
  -c 'lua require("codetier").setup({ cmd = { "codetier-not-installed", "--stdio" } })' \
  -c 'lua for _, c in ipairs({"CodetierExplain","CodetierGenerate","CodetierReview","CodetierUsage"}) do assert(vim.fn.exists(":" .. c) == 2, c) end' \
  -c 'lua io.stdout:write("plugin loads on " .. tostring(vim.version().major) .. "." .. tostring(vim.version().minor) .. "." .. tostring(vim.version().patch) .. "\n")' \
  -c 'qall!'
