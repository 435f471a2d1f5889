# syntax=docker/dockerfile:1
# Multi-stage build: compile in the Rust image, run from a small distroless-style Debian image
# as a non-root user.

FROM rust:1-slim-bookworm AS build
WORKDIR /src
# Cache dependencies: copy manifests first, build a dummy tree, then the real sources.
COPY . .
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked -p llmgate-server \
 && cp target/release/llmgate /usr/local/bin/llmgate

FROM debian:bookworm-slim AS runtime
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates tini \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --system --uid 10001 --home-dir /var/lib/llmgate --create-home llmgate
COPY --from=build /usr/local/bin/llmgate /usr/local/bin/llmgate
USER llmgate
WORKDIR /var/lib/llmgate
ENV RUST_LOG=info
EXPOSE 4000
HEALTHCHECK --interval=10s --timeout=2s --retries=3 \
  CMD ["/usr/local/bin/llmgate", "health", "--url", "http://127.0.0.1:4000/health/ready"]
ENTRYPOINT ["/usr/bin/tini", "--", "/usr/local/bin/llmgate"]
CMD ["serve", "--config", "/etc/llmgate/llmgate.yaml", "--listen", "0.0.0.0:4000"]
