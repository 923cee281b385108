#!/usr/bin/env bash
# `npm run bench:<name>`: install whatever is missing (sourced, so its exports reach node),
# then run one benchmark from dist/bench.
set -euo pipefail
name="$1"; shift
source "$(dirname "$0")/ensure-deps.sh"
exec node --enable-source-maps "$ROOT/dist/bench/${name}.js" "$@"
