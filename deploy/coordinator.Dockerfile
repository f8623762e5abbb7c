# syntax=docker/dockerfile:1
# The coordinator image: `dfscan-coordinator` alone, which does not link
# libtorch (the coordinator, queue and proto crates never use it), on
# distroless (glibc, libgcc, CA certificates; no shell). Build from the
# repository root:
#
#   docker build -f deploy/coordinator.Dockerfile -t dfscan/dfscan-coordinator:0.1.0 .

ARG RUST_VERSION=1.95
ARG DEBIAN=bookworm

FROM rust:${RUST_VERSION}-${DEBIAN} AS build
SHELL ["/bin/bash", "-o", "pipefail", "-c"]
# cmake + nasm build the bundled libjpeg-turbo (the coordinator sniffs
# images); python3 + torch only because `dfscan-coordinator` is a target of
# the root package, whose torch-sys build script asks `import torch` for
# libtorch's paths. Nothing of torch reaches the final image.
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends cmake nasm python3 python3-venv \
    && rm -rf /var/lib/apt/lists/*
RUN python3 -m venv /opt/torch \
    && /opt/torch/bin/pip install --no-cache-dir torch==2.11.0 \
    && ln -s "$(/opt/torch/bin/python -c 'import sysconfig; print(sysconfig.get_path("purelib"))')" /opt/torch/site-packages
WORKDIR /src
COPY . .
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    ln -sfn /opt/torch .venv \
    && cargo build --release --locked --bin dfscan-coordinator \
    && cp target/release/dfscan-coordinator /usr/local/bin/dfscan-coordinator \
    && if ldd /usr/local/bin/dfscan-coordinator | grep -q torch; then echo "dfscan-coordinator links libtorch" >&2; exit 1; fi

FROM gcr.io/distroless/cc-debian12:nonroot AS coordinator
COPY --from=build /usr/local/bin/dfscan-coordinator /usr/local/bin/dfscan-coordinator
# 65532 = distroless's nonroot user, the chart's runAsUser.
USER 65532:65532
EXPOSE 50051
ENTRYPOINT ["dfscan-coordinator"]
CMD ["--listen", "0.0.0.0:50051"]
