#!/usr/bin/env bash
# Checks and packages the VS Code extension: clean install from the lock file, type-check, lint,
# unit tests, then the .vsix. Called from the repository's .ci/run.
set -euo pipefail
cd "$(dirname "$0")"
npm ci --no-audit --no-fund
npm run typecheck
npm run lint
npm test
npm run package
version=$(node -p 'require("./package.json").version')
test -s "codetier-${version}.vsix" || { echo "ci.sh: codetier-${version}.vsix was not produced" >&2; exit 1; }
# The package must hold the bundled client; vsce lists the files it packed.
npx --no-install vsce ls --no-dependencies | grep -qx 'dist/extension.js' || { echo "ci.sh: dist/extension.js missing from the package" >&2; exit 1; }
echo "ci.sh: codetier-${version}.vsix OK"
