#!/usr/bin/env bash
# `npm test`: install whatever is missing, type-check, then run the jest suite against a real
# Temporal dev server and real Postgres (started once in test/globalSetup.ts).
set -euo pipefail
LAMPION_SKIP_BUILD=1 LAMPION_NEED_BROWSER=1 source "$(dirname "$0")/ensure-deps.sh"
cd "$ROOT"
npx tsc --noEmit -p tsconfig.json
exec npx jest "$@"
