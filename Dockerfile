# The operator image the Helm chart runs. No container engine exists on the project's build machines, so
# this file is not built in CI; it is kept simple: a static musl build, then a distroless static base.
FROM rust:1.95-bookworm AS build
RUN rustup target add x86_64-unknown-linux-musl && apt-get update && apt-get install -y --no-install-recommends musl-tools && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY Cargo.toml Cargo.lock ./
COPY src ./src
COPY benches ./benches
COPY tests ./tests
RUN cargo build --release --locked --target x86_64-unknown-linux-musl --bin secret-rotator

FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /src/target/x86_64-unknown-linux-musl/release/secret-rotator /usr/local/bin/secret-rotator
USER 65532:65532
ENTRYPOINT ["/usr/local/bin/secret-rotator"]
CMD ["run"]
