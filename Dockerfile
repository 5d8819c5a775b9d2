# syntax=docker/dockerfile:1
#
# handshake_exporter container image.
#
#   docker build -t handshake_exporter .
#   docker run --rm -p 9115:9115 handshake_exporter
#   docker run --rm -p 9115:9115 \
#       -v "$PWD/blackbox.yml:/etc/handshake_exporter/blackbox.yml:ro" handshake_exporter
#
# Configuration: the working directory is /etc/handshake_exporter and the
# exporter's --config.file default is `blackbox.yml` (relative), so a file
# mounted at /etc/handshake_exporter/blackbox.yml is picked up without any
# flag; with nothing mounted, the embedded default config (http_2xx,
# http_post_2xx, tcp_connect, tls_connect, ws_upgrade, wss_upgrade_ping) is
# used and a log line says so. An explicit --config.file=<path> must exist.
# Extra flags go after the image name (they are passed to the binary):
#   docker run ... handshake_exporter --log.format=json --log.level=debug
# SIGHUP (docker kill -s HUP <ctr>) or POST /-/reload reloads the config.
#
# TLS verification uses the system roots (rustls-native-certs): the runtime
# image ships /etc/ssl/certs from Debian's ca-certificates. Add a private CA
# with tls_config.ca_file in the module instead of rebuilding the image.
#
# Build info: .git is not sent to the build (see .dockerignore), so
# handshake_exporter_build_info{revision="unknown"}.

ARG RUST_VERSION=1.95

FROM rust:${RUST_VERSION}-bookworm AS builder
WORKDIR /src
COPY Cargo.toml Cargo.lock build.rs ./
COPY src ./src
# Not built here, but Cargo.toml declares the bench target and cargo wants
# its file to exist.
COPY benches ./benches
# The cache mounts keep the registry and the target dir between builds
# (BuildKit, the default builder since Docker 23).
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked --bin handshake_exporter \
    && install -D -m 0755 target/release/handshake_exporter /out/handshake_exporter

# distroless "cc": glibc, libgcc, ca-certificates, tzdata; no shell.
# The :nonroot tag runs as uid/gid 65532.
FROM gcr.io/distroless/cc-debian12:nonroot
LABEL org.opencontainers.image.title="handshake_exporter" \
      org.opencontainers.image.description="Blackbox-style Prometheus exporter for HTTP, WebSocket, TLS and TCP probes with failure reasons" \
      org.opencontainers.image.licenses="Apache-2.0"
COPY --from=builder /out/handshake_exporter /usr/local/bin/handshake_exporter
WORKDIR /etc/handshake_exporter
USER 65532:65532
EXPOSE 9115
ENTRYPOINT ["/usr/local/bin/handshake_exporter"]
CMD ["--web.listen-address=:9115"]
