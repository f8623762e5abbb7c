# syntax=docker/dockerfile:1
# The coordinator image: `dfscan-coordinator` alone, a binary of the
# dfscan-process package, whose dependency tree holds no libtorch
# (crates/process/tests/libtorch_free.rs), on distroless (glibc, libgcc, CA
# certificates; no shell). Build from the repository root:
#
#   docker build -f deploy/coordinator.Dockerfile -t dfscan/dfscan-coordinator:0.1.0 .

ARG RUST_VERSION=1.95
ARG DEBIAN=bookworm

FROM rust:${RUST_VERSION}-${DEBIAN} AS build
SHELL ["/bin/bash", "-o", "pipefail", "-c"]
WORKDIR /src
COPY . .
# Cargo builds dfscan-process's tree only: no torch wheel, no Python (the
# image's gcc compiles ring's C). The ldd check guards the promise.
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked -p dfscan-process --bin dfscan-coordinator \
    && cp target/release/dfscan-coordinator /usr/local/bin/dfscan-coordinator \
    && if ldd /usr/local/bin/dfscan-coordinator | grep -q torch; then echo "dfscan-coordinator links libtorch" >&2; exit 1; fi

FROM gcr.io/distroless/cc-debian12:nonroot AS coordinator
COPY --from=build /usr/local/bin/dfscan-coordinator /usr/local/bin/dfscan-coordinator
# 65532 = distroless's nonroot user, the chart's runAsUser.
USER 65532:65532
EXPOSE 50051
ENTRYPOINT ["dfscan-coordinator"]
CMD ["--listen", "0.0.0.0:50051"]
