# Ferry's container image: every binary (ferry-operator, ferry-dispatcher, ferry-broker, ferry)
# in one distroless image; the Helm chart (charts/ferry) picks the binary with `command`.
#
#   docker build -t ghcr.io/ferry-dev/ferry:0.1.0 .
#
# Build stage: the bundled librdkafka is compiled from source by rdkafka-sys with cc, make and
# perl, against the system OpenSSL (TLS and SASL SCRAM to Kafka; no cmake, no system librdkafka,
# no zlib, no Cyrus SASL so no GSSAPI).
FROM rust:1.95-bookworm AS build
RUN apt-get update \
    && apt-get install -y --no-install-recommends build-essential perl pkg-config libssl-dev \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY . .
RUN cargo build --release --locked \
        -p ferry-dispatcher -p ferry-broker -p ferry-operator -p ferry \
    && mkdir -p /out \
    && cp target/release/ferry-dispatcher target/release/ferry-broker \
          target/release/ferry-operator target/release/ferry /out/

# Runtime: glibc, libgcc and OpenSSL's libssl3 (what the binaries link; distroless/cc has them), no shell, uid/gid 65532 ("nonroot"),
# the uid the chart runs every container as.
FROM gcr.io/distroless/cc-debian12:nonroot
LABEL org.opencontainers.image.source="https://github.com/ferry-dev/ferry" \
      org.opencontainers.image.description="Ferry: Knative-style eventing and scale-to-zero serving on a Kafka-protocol log" \
      org.opencontainers.image.licenses="Apache-2.0"
COPY --from=build /out/ /usr/local/bin/
USER 65532:65532
ENTRYPOINT ["/usr/local/bin/ferry"]
