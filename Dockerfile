# syntax=docker/dockerfile:1
# The `strom` image: one binary (built from the workspace in a Rust builder) and the built dashboard (a Node stage),
# run as a non-root user on Debian slim.
# Built by `docker compose build strom` (or `make up`). Dependency and target caches are BuildKit cache mounts, so a
# rebuild after a source change recompiles only STROM's own crates.

ARG RUST_VERSION=1.95
ARG DEBIAN_SUITE=bookworm

# --- ui: the dashboard (ui/, React + Vite 8, which needs Node.js 20.19+), built into /ui/dist; strom serves it from
# /app/ui/dist (its default --ui-dir, ui/dist, relative to WORKDIR /app).
FROM node:20-bookworm-slim AS ui
WORKDIR /ui
COPY ui/package.json ui/package-lock.json ./
RUN npm ci --no-audit --no-fund
COPY ui/ ./
RUN npm run build

# --- builder: compiles `strom` in release mode.
FROM rust:${RUST_VERSION}-${DEBIAN_SUITE} AS builder
WORKDIR /src
COPY . .
# Migrations are compiled into the binary (sqlx::migrate!), so the runtime image needs no migrations/ folder.
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/usr/local/cargo/git \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked -p strom --bin strom \
    && install -m 0755 target/release/strom /usr/local/bin/strom

# --- runtime: the binary, CA certificates, and an unprivileged user.
FROM debian:${DEBIAN_SUITE}-slim AS runtime
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates \
    && rm -rf /var/lib/apt/lists/* \
    && groupadd --system --gid 10001 strom \
    && useradd --system --uid 10001 --gid strom --home-dir /app --create-home --shell /usr/sbin/nologin strom
COPY --from=builder /usr/local/bin/strom /usr/local/bin/strom
COPY --from=ui /ui/dist /app/ui/dist
WORKDIR /app
USER strom:strom
ENV STROM_LISTEN=0.0.0.0:8080 \
    STROM_LOG_FORMAT=json
EXPOSE 8080
CMD ["strom", "serve"]
