#!/usr/bin/env bash
# The GPU path, proven and measured in one short window on a borrowed CUDA host.
#
#   scripts/gpu-check.sh --pack                  # the build machine: build and bundle
#   scripts/gpu-check.sh [--out DIR] [--steps S]  # the GPU host: builds nothing
#   scripts/gpu-check.sh --dry-run [--out DIR]   # anywhere: CPU, small sizes, every step
# (--steps parity,score,cluster,metrics,train reruns some; --deadline-s N, --keep-work)
#
# What it runs (scripts/gpu_check.py does the steps; its docstring has the detail):
#   1. the parity test binary's ignored CUDA cases (tests/parity.rs `cuda_*`) in f32, bf16
#      and f16: f32 within the CPU bounds, bf16/f16 within the documented looser ones;
#   2. `dfscan score` against `transformers.pipeline` on the same GPU in the same run:
#      ViT-B/16 (random weights, tests/tools/make_checkpoint.py --preset base), 256x256 JPEG
#      files in, batch 32/128/256, f32/bf16/f16: images/s, GPU utilisation and memory
#      (NVML), and the shares of dfscan's time spent decoding and waiting for the model;
#   3. a worker against a redis-server this script starts on a free loopback port (never
#      6379) and stops: one 20,000-item `dfscan submit` job, items/s and the worker's
#      `dfscan_worker_batch_size` histogram from its /metrics;
#   4. `dfscan train --dtype bf16` and `--dtype f16` (loss scaling), ~300 steps each on a
#      head-less tiny-a base: the losses fall and the checkpoint reloads in `dfscan score`;
#   5. the worker's /metrics exports `dfscan_worker_gpu_memory_used_bytes`;
#   6. writes everything, with `nvidia-smi -q`'s GPU, driver and CUDA, to report.json and
#      report.md (ready for BENCHMARKS.md) in --out, else $OUT, else target/gpu-report.
# Estimated at about 5 minutes on one H200 (not yet run on one); it starts nothing new
# after --deadline-s (420 s) and writes what it has, so the caller's timeout is not what
# ends it. A second window reruns only what failed or was cut (--steps). Exit status 0
# when every step passed, 1 when one failed (the report says which and why).
#
# What travels to the GPU host (one carried path, target/gpu-check, 38 MB; --pack makes
# it and prints its size):
#   bin/dfscan        release build of the `dfscan` binary (stripped)
#   bin/parity        release build of tests/parity.rs (stripped)
#   fixtures/         tests/parity.rs's fixtures (tiny checkpoints, images, transformers'
#                     CPU outputs), which it reads through DFSCAN_TEST_FIXTURES
#   redis/            redis-server and the shared libraries it needs beyond glibc
#   MANIFEST.json     commit, date and the torch version the binaries were built against
# The scripts themselves travel with the working tree.
#
# What the GPU host must have (the workplace's CUDA image has all of it):
#   - a python3 with the same torch wheel the binaries were built against (2.11.0; a
#     CUDA 13 build) and transformers, numpy and Pillow; nvidia-ml-py (pynvml) for the
#     GPU samples, else nvidia-smi on PATH. The workplace image's transformers (5.17)
#     is not the setup's (5.24); the report records both sides' versions. Where a host
#     lacks transformers, or the same version is wanted, carry its wheel as
#     /work/.library/device/README.md's notes say (pip download --no-deps into .whl,
#     pip install --target there, PYTHONPATH), or point GPU_CHECK_PYTHON at a python.
#   - glibc >= the build machine's (2.36; Debian 12).
# How the binaries find libtorch there: build.rs bakes an rpath (RUNPATH) to the build
# machine's virtualenv, which does not exist on the GPU host, so this script asks that
# python3 where its torch/lib is and puts it first on LD_LIBRARY_PATH (searched before
# RUNPATH). libtorch_cuda.so finds the CUDA libraries of the nvidia-* wheels through its
# own rpath ($ORIGIN/../../nvidia/...). A torch of another version than MANIFEST.json's is
# refused: libtorch has no stable ABI.
#
# The device tool's call (one command, well under 2,000 characters):
#   run(command='scripts/gpu-check.sh --out "$OUT"', carry=["target/gpu-check"],
#       timeout_s=480)
# $OUT gets report.json, report.md, nvidia-smi-q.txt and worker-metrics.txt (4 files).
#
# Each input is the override, else the bundle's, else this checkout's own build (a dry run
# on a development machine): GPU_CHECK_DFSCAN (target/release/dfscan), GPU_CHECK_PARITY
# (the newest target/release/deps/parity-*), GPU_CHECK_FIXTURES (target/tmp/fixtures-*),
# GPU_CHECK_REDIS_SERVER (redis-server on PATH), GPU_CHECK_PYTHON (.venv, else python3),
# GPU_CHECK_BUNDLE (target/gpu-check). tests/gpu_check.rs sets the first four. They are
# not DFSCAN_ names: dfscan refuses DFSCAN_ variables that are not its settings.
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
bundle=${GPU_CHECK_BUNDLE:-$repo/target/gpu-check}
mode=gpu
out=""
pack=false
deadline=420
steps=""
keep_work=false

usage() {
  sed -n '2,8p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//' >&2
  exit 2
}
while [ $# -gt 0 ]; do
  case $1 in
    --dry-run) mode=dry ;;
    --pack) pack=true ;;
    --out) out=${2:?--out needs a folder}; shift ;;
    --deadline-s) deadline=${2:?--deadline-s needs seconds}; shift ;;
    --steps) steps=${2:?--steps needs a list}; shift ;;
    --keep-work) keep_work=true ;;
    -h | --help) usage ;;
    *) echo "gpu-check: unknown argument $1" >&2; usage ;;
  esac
  shift
done

say() { printf '[gpu-check] %s\n' "$*" >&2; }
die() { say "$*"; exit 1; }

# The torch fixtures are cached under target/tmp keyed like tests/common/mod.rs keys them:
# the first 6 bytes of the sha256 of make_fixtures.py followed by make_checkpoint.py.
fixtures_dir() {
  local key
  key=$(cat "$repo/tests/tools/make_fixtures.py" "$repo/tests/tools/make_checkpoint.py" | sha256sum | cut -c1-12)
  echo "$repo/target/tmp/fixtures-$key"
}

if $pack; then
  cd "$repo"
  [ -x .venv/bin/python ] || die "no .venv: run scripts/setup.sh first"
  say "building the release binary and the parity tests"
  cargo build --release --locked --bin dfscan
  parity=$(cargo test --release --locked --test parity --no-run --message-format=json-render-diagnostics |
    sed -n 's|.*"executable":"\([^"]*/deps/parity-[^"]*\)".*|\1|p' | tail -1)
  [ -x "$parity" ] || die "cargo did not report the parity test binary"
  fixtures=$(fixtures_dir)
  if [ ! -f "$fixtures/.complete" ]; then
    say "generating the parity fixtures (one CPU parity test)"
    "$parity" --exact preprocessing_matches_the_pil_image_processor >/dev/null
  fi
  rm -rf "$bundle"
  mkdir -p "$bundle/bin" "$bundle/redis/lib"
  # Line tables are for local backtraces; stripped, both binaries fit the carry limit.
  strip -o "$bundle/bin/dfscan" target/release/dfscan
  strip -o "$bundle/bin/parity" "$parity"
  cp -r "$fixtures" "$bundle/fixtures"
  redis=$(command -v redis-server) || die "no redis-server here to bundle"
  cp "$redis" "$bundle/redis/redis-server"
  # Every library it loads except glibc's own, which the host has (newer).
  ldd "$redis" | awk '/=> \// {print $3}' | while read -r lib; do
    case $(basename "$lib") in
      libc.so.* | libm.so.* | libdl.so.* | libpthread.so.* | librt.so.* | ld-linux*) ;;
      *) cp "$lib" "$bundle/redis/lib/" ;;
    esac
  done
  commit=$(git rev-parse --short HEAD 2>/dev/null || echo unknown)
  git diff --quiet HEAD 2>/dev/null || commit="$commit+changes"
  torch=$(.venv/bin/python -c 'import torch; print(torch.__version__)')
  glibc=$(ldd --version | awk 'NR == 1 {print $NF}')
  printf '{"commit": "%s", "packed": "%s", "torch": "%s", "glibc": "%s"}\n' \
    "$commit" "$(date -u +%Y-%m-%dT%H:%M:%SZ)" "$torch" "$glibc" >"$bundle/MANIFEST.json"
  say "bundle $bundle: $(du -sh "$bundle" | cut -f1) (the device tool carries 64 MiB with the tree)"
  say "run there: scripts/gpu-check.sh --out \"\$OUT\"   (carry ${bundle#"$repo"/}, timeout_s 480)"
  exit 0
fi

# The binaries and their inputs: overrides, then the bundle, then (for a dry run on a
# development machine) this checkout's own build.
pick() {
  local override=$1 carried=$2 local_build=$3
  if [ -n "$override" ]; then echo "$override"
  elif [ -e "$carried" ]; then echo "$carried"
  else echo "$local_build"; fi
}
dfscan=$(pick "${GPU_CHECK_DFSCAN:-}" "$bundle/bin/dfscan" "$repo/target/release/dfscan")
parity=$(pick "${GPU_CHECK_PARITY:-}" "$bundle/bin/parity" \
  "$(find "$repo/target/release/deps" -maxdepth 1 -type f -executable -name 'parity-*' -printf '%T@ %p\n' 2>/dev/null | sort -n | tail -1 | cut -d' ' -f2-)")
fixtures=$(pick "${GPU_CHECK_FIXTURES:-}" "$bundle/fixtures" "$(fixtures_dir)")
redis=$(pick "${GPU_CHECK_REDIS_SERVER:-}" "$bundle/redis/redis-server" "$(command -v redis-server || true)")
for what in dfscan parity redis; do
  [ -x "${!what}" ] || die "no $what binary (${!what:-none found}): run scripts/gpu-check.sh --pack on the build machine and carry ${bundle#"$repo"/}"
done
[ -f "$fixtures/reference.json" ] || die "no parity fixtures in $fixtures"
if [ "$redis" = "$bundle/redis/redis-server" ]; then
  # The bundled libraries serve redis-server alone (a wrapper, so nothing else loads them).
  wrapper=$(mktemp)
  printf '#!/usr/bin/env bash\nLD_LIBRARY_PATH=%q exec %q "$@"\n' "$bundle/redis/lib" "$redis" >"$wrapper"
  chmod +x "$wrapper"
  redis=$wrapper
fi

# A python3 with torch: the override, this checkout's .venv, or the host's python3.
python=${GPU_CHECK_PYTHON:-}
if [ -z "$python" ]; then
  for candidate in "$repo/.venv/bin/python" python3; do
    if "$candidate" -c 'import torch' >/dev/null 2>&1; then python=$candidate; break; fi
  done
fi
[ -n "$python" ] || die "no python3 with torch (set GPU_CHECK_PYTHON)"
torch_lib=$("$python" -c 'import os, torch; print(os.path.join(os.path.dirname(torch.__file__), "lib"))')
torch_version=$("$python" -c 'import torch; print(torch.__version__)')
manifest="$(dirname "$(dirname "$dfscan")")/MANIFEST.json"
if [ -f "$manifest" ]; then
  built=$(sed -n 's/.*"torch": "\([^"+]*\).*/\1/p' "$manifest")
  [ "${torch_version%%+*}" = "$built" ] ||
    die "torch $torch_version here, the binaries were built against $built (libtorch has no stable ABI)"
fi
export LD_LIBRARY_PATH="$torch_lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
if missing=$(ldd "$dfscan" | grep 'not found'); then
  die "dfscan cannot load: $missing"
fi

out=${out:-${OUT:-$repo/target/gpu-report}}
mkdir -p "$out"
work=$(mktemp -d "${TMPDIR:-/tmp}/dfscan-gpu-check.XXXXXX")
cleanup() {
  if $keep_work; then say "work folder kept: $work"; else rm -rf "$work"; fi
  [ -z "${wrapper:-}" ] || rm -f "$wrapper"
}
trap cleanup EXIT
say "mode $mode; dfscan $dfscan; torch $torch_version from $torch_lib; report in $out"
PYTHONUNBUFFERED=1 "$python" "$repo/scripts/gpu_check.py" run --mode "$mode" --out "$out" \
  --work "$work" --dfscan "$dfscan" --parity "$parity" --fixtures "$fixtures" \
  --redis-server "$redis" --deadline-s "$deadline" ${steps:+--steps "$steps"}
