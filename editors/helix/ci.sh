#!/usr/bin/env bash
# Checks the Helix snippets (TOML parses, binary and languages named, key bindings expand to valid
# arguments). Needs python3 >= 3.11 for tomllib. Called from the repository's .ci/run.
set -euo pipefail
cd "$(dirname "$0")"
python3 test_config.py
