#!/bin/sh
# OpenBao in dev mode plus the init step that writes STROM's policy (deploy/openbao/strom-policy.hcl).
# Dev mode keeps everything in memory, so the policy is written on every start. The compose healthcheck turns healthy
# only once `bao policy read strom` succeeds, so services that depend on OpenBao see the policy in place.
set -eu

# The server runs as the image's unprivileged `openbao` user when we start as root (older images); newer images already
# start as `openbao`. The CLI calls below authenticate with BAO_TOKEN from the environment, so no token file is kept.
set -- bao server -dev -dev-no-store-token \
  -dev-root-token-id="${BAO_DEV_ROOT_TOKEN_ID:?set BAO_DEV_ROOT_TOKEN_ID}" \
  -dev-listen-address="${BAO_DEV_LISTEN_ADDRESS:-0.0.0.0:8200}"
if [ "$(id -u)" = 0 ] && command -v su-exec >/dev/null 2>&1; then
  set -- su-exec openbao "$@"
fi
"$@" &
server_pid=$!
trap 'kill -TERM "$server_pid" 2>/dev/null' TERM INT

tries=0
until bao status >/dev/null 2>&1; do
  tries=$((tries + 1))
  if [ "$tries" -gt 60 ]; then
    echo "openbao-dev: server did not become ready in 30 s" >&2
    kill -TERM "$server_pid" 2>/dev/null || true
    exit 1
  fi
  if ! kill -0 "$server_pid" 2>/dev/null; then
    echo "openbao-dev: server exited during start-up" >&2
    exit 1
  fi
  sleep 0.5
done

bao policy write strom /strom/strom-policy.hcl
echo "openbao-dev: policy strom written (secret/data/strom/*)"

# Wait for the server; a TERM from `docker compose stop` interrupts `wait` and is forwarded by the trap above,
# after which we wait again for the server to finish shutting down and return its status.
status=0
wait "$server_pid" || status=$?
while kill -0 "$server_pid" 2>/dev/null; do
  status=0
  wait "$server_pid" || status=$?
done
exit "$status"
