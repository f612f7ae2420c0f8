# syntax=docker/dockerfile:1
FROM rust:1.95-bookworm AS build
WORKDIR /src
COPY . .
RUN cargo build --release --locked --bin minispod

FROM debian:bookworm-slim
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --system --uid 10001 --home /app minispod \
 && mkdir -p /app/data && chown minispod /app/data
WORKDIR /app
COPY --from=build /src/target/release/minispod /usr/local/bin/minispod
USER minispod
ENV MINISPOD_LISTEN=0.0.0.0:8080 \
    DATABASE_URL=sqlite:///app/data/minispod.db?mode=rwc \
    MINISPOD_LOG_FORMAT=json
EXPOSE 8080
HEALTHCHECK --interval=30s --timeout=3s CMD ["/bin/sh", "-c", "exec 3<>/dev/tcp/127.0.0.1/8080"]
ENTRYPOINT ["/usr/local/bin/minispod"]
CMD ["serve"]
