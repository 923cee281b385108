#!/usr/bin/env bash
# `npm start`: install whatever is missing, then run the whole embedded stack in the foreground.
set -euo pipefail
source "$(dirname "$0")/ensure-deps.sh"
exec node --enable-source-maps "$ROOT/dist/src/cli/start.js" "$@"
