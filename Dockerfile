# syntax=docker/dockerfile:1
# MinisPod Gateway image. Build: docker build -t minispod-gateway .
# (README: Deployment). The build needs no dev-dependencies and no Docker-specific BuildKit flags.

ARG RUST_VERSION=1.95

# --- Dependency cache (cargo-chef) ------------------------------------------------------------
# The recipe holds the workspace's manifests, lockfile and target list, and stub sources are
# cooked from it, so the dependency layer depends on nothing else: editing src/ rebuilds only the
# project. It works with any builder and with exported layer caches (CI), unlike cache mounts,
# which live on one builder's disk.
FROM rust:${RUST_VERSION}-bookworm AS chef
RUN cargo install cargo-chef --locked --version 0.1.78
WORKDIR /src

FROM chef AS planner
COPY . .
RUN cargo chef prepare --recipe-path recipe.json

FROM chef AS build
COPY --from=planner /src/recipe.json recipe.json
# Stub sources for every workspace member (the gateway and migration/), then the dependencies of
# the one binary: the same set `cargo build --bin minispod` needs below, no dev-dependencies.
RUN cargo chef cook --release --locked --bin minispod --recipe-path recipe.json
COPY . .
RUN cargo build --release --locked --bin minispod

# --- Runtime: Debian slim, CA certificates (Midtrans, Kubernetes API), one non-root user ------
FROM debian:bookworm-slim AS runtime
ARG VERSION=0.1.0
ARG SOURCE_URL=https://github.com/minispod/minispod-gateway
LABEL org.opencontainers.image.title="MinisPod Gateway" \
      org.opencontainers.image.description="GraphQL API of the MinisPod app platform" \
      org.opencontainers.image.source="${SOURCE_URL}" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.licenses="MIT"

# Pinning Debian package versions breaks the build whenever a security update replaces them.
# hadolint ignore=DL3008
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates \
 && rm -rf /var/lib/apt/lists/* \
 && groupadd --system --gid 10001 minispod \
 && useradd --system --uid 10001 --gid 10001 --home-dir /app --no-create-home --shell /usr/sbin/nologin minispod \
 && mkdir -p /app/data \
 && chown 10001:10001 /app/data
WORKDIR /app
COPY --from=build /src/target/release/minispod /usr/local/bin/minispod

# Production defaults (JWT_SECRET required, no demo seeding, no introspection); SQLite in the
# volume below unless DATABASE_URL names a PostgreSQL server (needed for more than one replica).
# GLIBC_TUNABLES: blocks of 1 MiB and more (argon2's 19 MiB per password hash) are mapped and
# unmapped, not kept in malloc's heap: RSS comes back after a burst (bench/README.md, "Memory").
ENV MINISPOD_ENV=production \
    GLIBC_TUNABLES=glibc.malloc.mmap_threshold=1048576 \
    MINISPOD_LISTEN=0.0.0.0:8080 \
    DATABASE_URL="sqlite:///app/data/minispod.db?mode=rwc" \
    MINISPOD_LOG_FORMAT=json
# Declared after the chown above: a new volume takes the directory's owner from the image.
VOLUME ["/app/data"]
USER 10001:10001
EXPOSE 8080
# The binary probes itself (GET /healthz, 2 s): the image has no curl, and dash has no /dev/tcp.
HEALTHCHECK --interval=30s --timeout=5s --start-period=20s --retries=3 \
  CMD ["/usr/local/bin/minispod", "healthcheck"]
ENTRYPOINT ["/usr/local/bin/minispod"]
CMD ["serve"]
