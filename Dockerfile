# oxibeat and the demo log generator, for elk-compose.yml (and as a plain agent image).
#   docker build -t oxibeat .
ARG RUST_VERSION=1.95
FROM rust:${RUST_VERSION}-bookworm AS build
WORKDIR /src
COPY . .
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked --bin oxibeat --example loggen \
 && install -m 0755 target/release/oxibeat /usr/local/bin/oxibeat \
 && install -m 0755 target/release/examples/loggen /usr/local/bin/loggen

FROM debian:bookworm-slim
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates curl \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --system --uid 10001 --home-dir /var/lib/oxibeat --create-home oxibeat \
 && mkdir -p /var/log/demo /var/lib/oxibeat/data \
 && chown oxibeat /var/log/demo /var/lib/oxibeat/data
COPY --from=build /usr/local/bin/oxibeat /usr/local/bin/loggen /usr/local/bin/
COPY examples/stack/oxibeat-agent.toml examples/stack/oxibeat-setup.toml /etc/oxibeat/
USER oxibeat
WORKDIR /var/lib/oxibeat
ENTRYPOINT ["/usr/local/bin/oxibeat"]
CMD ["run", "-c", "/etc/oxibeat/oxibeat-agent.toml"]
