#!/usr/bin/env bash
# Installs what the VS Code end-to-end test needs, each piece only when missing, everything under the
# build directory: Debian's chromium and ripgrep (apt), then code-server and playwright-core (npm) in
# $TOOLS (default target/editor-tools). Safe to run again; prints what it did.
#
# code-server's VS Code depends on @vscode/ripgrep, whose post-install downloads an `rg` binary from
# GitHub. Offline that fails, so the download cache it looks in first is seeded with a tarball of
# Debian's `rg`, under the folder and file name its lib/download.js and lib/postinstall.js use.
set -euo pipefail

root="$(cd "$(dirname "$0")/../../.." && pwd)"
target="${CARGO_TARGET_DIR:-$root/target}"
tools="${TOOLS:-$target/editor-tools}"
CODE_SERVER_VERSION="${CODE_SERVER_VERSION:-4.100.3}"
PLAYWRIGHT_VERSION="${PLAYWRIGHT_VERSION:-1.65.1}"

say() { printf 'install.sh: %s\n' "$*" >&2; }
die() { say "FAILED: $*"; exit 1; }

need_apt=()
command -v chromium >/dev/null 2>&1 || need_apt+=(chromium)
command -v rg >/dev/null 2>&1 || need_apt+=(ripgrep)
# node-gyp builds code-server's native modules (node-pty, spdlog, kerberos) with these.
command -v g++ >/dev/null 2>&1 || need_apt+=(g++)
command -v make >/dev/null 2>&1 || need_apt+=(make)
command -v python3 >/dev/null 2>&1 || need_apt+=(python3)
[ -e /usr/include/gssapi/gssapi.h ] || need_apt+=(libkrb5-dev)
if [ ${#need_apt[@]} -gt 0 ]; then
  say "apt-get install ${need_apt[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need_apt[@]}" >/dev/null
fi
command -v node >/dev/null 2>&1 || die "node is not installed (code-server $CODE_SERVER_VERSION needs Node 20)"
node_major="$(node -p 'process.versions.node.split(".")[0]')"
[ "$node_major" = 20 ] || die "code-server $CODE_SERVER_VERSION needs Node 20; this is Node $(node --version)"

installed() { node -p "require('$tools/node_modules/$1/package.json').version" 2>/dev/null || true; }
rg_bin="$tools/node_modules/code-server/lib/vscode/node_modules/@vscode/ripgrep/bin/rg"
if [ "$(installed code-server)" = "$CODE_SERVER_VERSION" ] && [ -x "$rg_bin" ] \
  && [ "$(installed playwright-core)" = "$PLAYWRIGHT_VERSION" ]; then
  say "code-server $CODE_SERVER_VERSION and playwright-core $PLAYWRIGHT_VERSION already in $tools"
  exit 0
fi

mkdir -p "$tools/tmp"
# os.tmpdir() of every install script below, so the ripgrep cache lives under the build directory.
export TMPDIR="$tools/tmp"

# Seed @vscode/ripgrep's download cache for every version code-server's lock files name.
work="$(mktemp -d "$TMPDIR/seed.XXXXXX")"
trap 'rm -rf "$work"' EXIT
(cd "$work" && npm pack --silent "code-server@$CODE_SERVER_VERSION" >/dev/null && tar xzf "code-server-$CODE_SERVER_VERSION.tgz")
rg_versions="$(node -e '
  const fs = require("fs"), out = new Set();
  for (const f of process.argv.slice(1)) {
    if (!fs.existsSync(f)) continue;
    const lock = JSON.parse(fs.readFileSync(f, "utf8"));
    for (const [k, v] of Object.entries(lock.packages || {})) if (k.endsWith("node_modules/@vscode/ripgrep")) out.add(v.version);
  }
  console.log([...out].join(" "));
' "$work/package/lib/vscode/npm-shrinkwrap.json" "$work/package/lib/vscode/extensions/npm-shrinkwrap.json" "$work/package/npm-shrinkwrap.json")"
[ -n "$rg_versions" ] || die "found no @vscode/ripgrep in code-server $CODE_SERVER_VERSION's lock files"
case "$(uname -m)" in
  x86_64) rg_target=x86_64-unknown-linux-musl ;;
  aarch64) rg_target=aarch64-unknown-linux-musl ;;
  *) die "no ripgrep target known for $(uname -m)" ;;
esac
mkdir -p "$work/rgbin"
cp "$(command -v rg)" "$work/rgbin/rg"
for v in $rg_versions; do
  (cd "$work" && npm pack --silent "@vscode/ripgrep@$v" >/dev/null && mkdir -p "rg-$v" && tar xzf "vscode-ripgrep-$v.tgz" -C "rg-$v")
  asset_version="$(sed -n "s/^const VERSION = '\(.*\)';.*/\1/p" "$work/rg-$v/package/lib/postinstall.js")"
  [ -n "$asset_version" ] || die "cannot read the ripgrep release of @vscode/ripgrep $v"
  grep -q 'os.tmpdir(), `vscode-ripgrep-cache-${packageVersion}`' "$work/rg-$v/package/lib/download.js" \
    || die "@vscode/ripgrep $v no longer caches under os.tmpdir()/vscode-ripgrep-cache-VERSION; update install.sh"
  cache="$TMPDIR/vscode-ripgrep-cache-$v"
  mkdir -p "$cache"
  tar czf "$cache/ripgrep-$asset_version-$rg_target.tar.gz" -C "$work/rgbin" rg
  say "seeded $cache/ripgrep-$asset_version-$rg_target.tar.gz with Debian's rg"
done

[ -f "$tools/package.json" ] || printf '{ "name": "codetier-editor-tools", "private": true }\n' >"$tools/package.json"
say "npm install code-server@$CODE_SERVER_VERSION playwright-core@$PLAYWRIGHT_VERSION into $tools (several minutes: native modules build)"
# node-gyp uses the installed Node headers instead of downloading them; node-pty's post-install
# runs `npx node-gyp`, which must not stop to ask whether to fetch it.
nodedir="$(dirname "$(dirname "$(command -v node)")")"
[ -e "$nodedir/include/node/node.h" ] || die "no Node headers under $nodedir/include/node (node-gyp would download them)"
(cd "$tools" && npm_config_nodedir="$nodedir" npm_config_yes=true npm install --no-audit --no-fund --unsafe-perm --save-exact \
  "code-server@$CODE_SERVER_VERSION" "playwright-core@$PLAYWRIGHT_VERSION")
[ -x "$tools/node_modules/.bin/code-server" ] || die "code-server was not installed"
[ -x "$rg_bin" ] || die "code-server's ripgrep is missing ($rg_bin)"
# --version would write a default config under ~/.config: point it at the tools folder instead.
say "done: code-server $(XDG_CONFIG_HOME="$tools/tmp" "$tools/node_modules/.bin/code-server" --version 2>/dev/null | tail -n 1)"
