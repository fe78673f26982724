# syntax=docker/dockerfile:1
# Parley's image: a cached dependency build (cargo-chef) on the official Rust image matching
# rust-version in Cargo.toml, then a small Debian runtime running as a non-root user.

ARG RUST_VERSION=1.94

FROM rust:${RUST_VERSION}-slim-bookworm AS chef
RUN cargo install cargo-chef --locked --version 0.1.78
WORKDIR /src

# The dependency recipe changes only when Cargo.toml or Cargo.lock does.
FROM chef AS planner
COPY . .
RUN cargo chef prepare --recipe-path recipe.json

FROM chef AS builder
COPY --from=planner /src/recipe.json recipe.json
RUN cargo chef cook --release --locked --recipe-path recipe.json
COPY . .
ENV CARGO_PROFILE_RELEASE_STRIP=true
RUN cargo build --release --locked --bin parley

FROM debian:bookworm-slim AS runtime
ARG VERSION=0.1.0
LABEL org.opencontainers.image.title="Parley" \
      org.opencontainers.image.description="A self-hosted chat bot for Discord and Telegram that streams answers from an OpenAI-compatible API" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.licenses="MIT" \
      org.opencontainers.image.documentation="README.md#self-hosting-with-docker"

# ca-certificates tracks Debian's security updates; pinning it would freeze stale roots.
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --system --uid 10001 --user-group --home-dir /data --shell /usr/sbin/nologin parley \
    && mkdir -p /data \
    && chown parley:parley /data

COPY --from=builder /src/target/release/parley /usr/local/bin/parley
# The defaults are compiled into the binary; this copy is the reference for overrides.
COPY config/default.toml /usr/share/doc/parley/default.toml

# Secrets (PARLEY__LLM__API_KEY, PARLEY__TELEGRAM__TOKEN, PARLEY__DISCORD__TOKEN) come only
# from the environment at run time, never from the image.
ENV PARLEY__STORE__DATABASE_URL=sqlite:///data/parley.db \
    PARLEY__HTTP__LISTEN=0.0.0.0:9464 \
    PARLEY__LOG__FORMAT=json

VOLUME ["/data"]
EXPOSE 9464
USER 10001:10001
# Nothing is written relative to the working directory; the user cannot write to /.
WORKDIR /

HEALTHCHECK --interval=30s --timeout=10s --start-period=30s --retries=3 \
    CMD ["parley", "healthcheck"]

STOPSIGNAL SIGTERM
ENTRYPOINT ["parley"]
CMD ["run"]
