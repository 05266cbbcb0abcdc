#!/usr/bin/env bash
# The dashboard's (ui/) steps for make, so people and CI run the same ones:
#   scripts/ui.sh build   `make ui` (and so `make run`): `npm ci` when ui/node_modules is missing or older than the
#                         lockfile, then `npm run build` when ui/dist is missing or older than a source. Nothing to do,
#                         nothing needed: an up-to-date ui/dist needs no Node.js.
#   scripts/ui.sh test    `make test`: `npm ci` when needed (always on a fresh clone: node_modules is not committed),
#                         the Vitest tests (with the staleness check of src/api/schema.d.ts), then the build.
#   scripts/ui.sh e2e     `make ui-e2e` (and `make test`, after the cargo tests): the browser tests (ui/e2e/*.e2e.ts)
#                         against a real `strom serve` in Debian's Chromium, after `build` when ui/dist is stale.
#                         Needs a built strom binary ($STROM_BIN, default ${CARGO_TARGET_DIR:-target}/debug/strom)
#                         and Chromium (/usr/bin/chromium, or $CHROMIUM); screenshots in target/e2e-screenshots/.
# Needs Node.js 20.19 or newer with npm (Vite 8); without it, one line says what to install and the exit is 1.
# `cargo build` never needs Node: the server serves ui/dist when it is there and says how to build it when not.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
readonly ui="$root/ui"
# Written after a successful `npm ci`; node_modules older than the lockfile means the dependencies changed.
readonly installed="$ui/node_modules/.strom-npm-ci"
# What the build reads: when one is newer than dist/index.html, dist is stale.
readonly sources=(src public index.html package.json package-lock.json vite.config.ts tsconfig.json)

say() { printf 'ui: %s\n' "$*"; }
die() { printf 'ui: %s\n' "$*" >&2; exit 1; }

require_node() {
  command -v node >/dev/null 2>&1 && command -v npm >/dev/null 2>&1 ||
    die "Node.js 20.19+ with npm is needed to build the dashboard (ui/): install it (https://nodejs.org, or your package manager's nodejs and npm), then run this again"
  local version
  version="$(node --version)"
  [[ "$version" =~ ^v([0-9]+)\.([0-9]+) ]] || die "cannot read the Node.js version from \`node --version\`: $version"
  local major="${BASH_REMATCH[1]}" minor="${BASH_REMATCH[2]}"
  if ((major < 20 || (major == 20 && minor < 19))); then
    die "Node.js $version is too old for the dashboard's build (Vite 8): install Node.js 20.19+ with npm (https://nodejs.org)"
  fi
}

needs_install() {
  [[ ! -f "$installed" || "$ui/package-lock.json" -nt "$installed" || "$ui/package.json" -nt "$installed" ]]
}

install() {
  if needs_install; then
    say "npm ci (ui/node_modules missing or older than ui/package-lock.json)"
    npm --prefix "$ui" ci --no-audit --no-fund
    touch "$installed"
  fi
}

needs_build() {
  [[ ! -f "$ui/dist/index.html" ]] && return 0
  local path
  for path in "${sources[@]}"; do
    [[ -n "$(find "$ui/$path" -newer "$ui/dist/index.html" -print -quit 2>/dev/null)" ]] && return 0
  done
  return 1
}

build() {
  say "npm run build (ui/dist missing or older than its sources)"
  npm --prefix "$ui" run build
}

# The strom binary the browser tests start: $STROM_BIN, else the debug build `cargo test` / `cargo build` leaves.
strom_bin() {
  local bin="${STROM_BIN:-${CARGO_TARGET_DIR:-$root/target}/debug/strom}"
  # Absolute, since the tests run from ui/ (a relative one is taken from the repository root, where make runs).
  [[ "$bin" == /* ]] || bin="$root/$bin"
  [[ -x "$bin" ]] ||
    die "no strom binary at $bin for the browser tests: build it (cargo build -p strom --bin strom) or set STROM_BIN"
  printf '%s\n' "$bin"
}

require_chromium() {
  local chromium="${CHROMIUM:-/usr/bin/chromium}"
  [[ -x "$chromium" ]] ||
    die "no Chromium at $chromium for the browser tests: apt-get install chromium (scripts/ensure-tools.sh does), or set CHROMIUM"
}

ensure_built() {
  if needs_install || needs_build; then
    require_node
    install
    build
  else
    say "ui/dist is up to date"
  fi
}

case "${1:-}" in
  build)
    ensure_built
    ;;
  e2e)
    require_node
    bin="$(strom_bin)"
    require_chromium
    ensure_built
    say "browser tests (ui/e2e) with $bin; screenshots in target/e2e-screenshots/"
    STROM_BIN="$bin" npm --prefix "$ui" run e2e
    ;;
  test)
    require_node
    install
    npm --prefix "$ui" test -- --run
    build
    ;;
  *)
    die "usage: $0 build|test|e2e"
    ;;
esac
