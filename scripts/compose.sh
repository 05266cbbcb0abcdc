#!/usr/bin/env bash
# Runs docker compose on the repository's docker-compose.yml, with whichever compose is installed (the `docker compose`
# plugin, else the standalone `docker-compose`). Fails at once, saying what is missing, when no Docker engine answers.
# Usage: scripts/compose.sh up -d --build | down | ps | logs strom | ...
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"

if ! command -v docker >/dev/null 2>&1; then
  echo "compose: the docker client is not installed: install Docker (docker.io and docker-compose, or Docker Desktop)" >&2
  exit 1
fi
if ! timeout 10 docker info >/dev/null 2>&1; then
  echo "compose: no Docker engine answers (\`docker info\` failed): start the Docker daemon, or use a machine that has one." >&2
  echo "compose: without Docker, \`make run\` starts strom on its embedded (in-memory) default." >&2
  exit 1
fi

if docker compose version >/dev/null 2>&1; then
  compose=(docker compose)
elif command -v docker-compose >/dev/null 2>&1; then
  compose=(docker-compose)
else
  echo "compose: neither \`docker compose\` nor \`docker-compose\` is installed: apt-get install docker-compose" >&2
  exit 1
fi

exec "${compose[@]}" --project-directory "$root" --file "$root/docker-compose.yml" "$@"
