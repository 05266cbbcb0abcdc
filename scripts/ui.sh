#!/usr/bin/env bash
# The dashboard's (ui/) steps for make, so people and CI run the same ones:
#   scripts/ui.sh build   `make ui` (and so `make run`): `npm ci` when ui/node_modules is missing or older than the
#                         lockfile, then `npm run build` when ui/dist is missing or older than a source. Nothing to do,
#                         nothing needed: an up-to-date ui/dist needs no Node.js.
#   scripts/ui.sh test    `make test`: `npm ci` when needed (always on a fresh clone: node_modules is not committed),
#                         the Vitest tests (with the staleness check of src/api/schema.d.ts), then the build.
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

case "${1:-}" in
  build)
    if needs_install || needs_build; then
      require_node
      install
      build
    else
      say "ui/dist is up to date"
    fi
    ;;
  test)
    require_node
    install
    npm --prefix "$ui" test -- --run
    build
    ;;
  *)
    die "usage: $0 build|test"
    ;;
esac
