# The operator image for people with a container engine. CI does not build this file: it builds the same
# image without an engine, with scripts/image (target/image/secret-rotator-<version>.oci.tar), and tests
# that one on a real node. Both give the same layout: the glibc release binary at
# /usr/local/bin/secret-rotator on a distroless-style Debian 12 base (C runtime, libgcc, CA certificates,
# passwd/group with the non-root user 65532, nsswitch.conf; no shell), user 65532:65532, entrypoint the
# binary, command `run`, working directory /home/nonroot.
FROM rust:1.95-bookworm AS build
WORKDIR /src
COPY Cargo.toml Cargo.lock ./
COPY crates ./crates
COPY src ./src
COPY benches ./benches
COPY tests ./tests
RUN cargo build --release --locked --bin secret-rotator

FROM gcr.io/distroless/cc-debian12:nonroot
COPY --from=build /src/target/release/secret-rotator /usr/local/bin/secret-rotator
ENV SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt
USER 65532:65532
WORKDIR /home/nonroot
ENTRYPOINT ["/usr/local/bin/secret-rotator"]
CMD ["run"]
