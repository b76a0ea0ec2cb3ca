# The botc image: the one binary, every role. Build from the repository root:
#   docker build -t botc:dev .
# docs/operations.md says how it is used on Kubernetes.

# Build stage: the release binary (librdkafka is built from source by rdkafka's build script,
# which needs a C toolchain; rust:bookworm has one).
FROM rust:1-bookworm AS build
WORKDIR /src
COPY . .
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked -p botc \
    && cp target/release/botc /usr/local/bin/botc

# Runtime stage: Debian slim (botc links glibc and zlib), CA certificates for the platforms'
# HTTPS APIs, and an unprivileged user. No shell tools are needed by botc itself.
FROM debian:bookworm-slim
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --system --uid 10001 --no-create-home --shell /usr/sbin/nologin botc
COPY --from=build /usr/local/bin/botc /usr/local/bin/botc
USER 10001:10001
EXPOSE 8080
ENTRYPOINT ["/usr/local/bin/botc"]
CMD ["--help"]
