# syntax=docker/dockerfile:1
# llmgate: a multi-stage build. The binary is compiled in the Rust image and runs from
# distroless (glibc, CA certificates, no shell, no package manager) as the non-root user
# `nonroot` (uid 65532). See docs/operations.md.
#
#   docker build -t llmgate .
#   docker run -p 4000:4000 -v llmgate-data:/var/lib/llmgate llmgate
#
# Without a config the built-in default runs: SQLite in /var/lib/llmgate (mount a volume),
# the offline `demo/echo` model, and a provider for each well-known API key in the
# environment. Mount a config at /etc/llmgate/llmgate.yaml and run
# `serve --config /etc/llmgate/llmgate.yaml` for production (docker-compose.yml does).

ARG RUST_VERSION=1.95

FROM rust:${RUST_VERSION}-slim-bookworm AS build
WORKDIR /src
COPY . .
# Registry and target caches survive between builds; the binary is copied out of the cache.
RUN --mount=type=cache,target=/usr/local/cargo/registry,sharing=locked \
    --mount=type=cache,target=/src/target,sharing=locked \
    cargo build --release --locked -p llmgate-server \
 && install -D -m 0755 target/release/llmgate /out/llmgate \
 && mkdir -p /out/data

FROM gcr.io/distroless/cc-debian12:nonroot AS runtime
COPY --from=build /out/llmgate /usr/local/bin/llmgate
# The data directory: the SQLite database and a generated master key live here.
COPY --from=build --chown=65532:65532 /out/data /var/lib/llmgate
USER 65532:65532
WORKDIR /var/lib/llmgate
VOLUME ["/var/lib/llmgate"]
ENV RUST_LOG=info
# 4000: the API. 9090: `server.metrics_listen` when the config sets it (keep it private).
EXPOSE 4000 9090
# llmgate drains on SIGTERM for `server.shutdown_grace_ms` (30 s by default): give it longer
# than that before the kill (`docker stop -t 40`, compose `stop_grace_period`).
STOPSIGNAL SIGTERM
# No curl in the image: the binary asks itself.
HEALTHCHECK --interval=10s --timeout=5s --start-period=30s --retries=3 \
  CMD ["/usr/local/bin/llmgate", "health", "--url", "http://127.0.0.1:4000/health/ready", "--timeout-ms", "3000"]
ENTRYPOINT ["/usr/local/bin/llmgate"]
CMD ["serve", "--listen", "0.0.0.0:4000"]
