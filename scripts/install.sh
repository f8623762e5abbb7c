#!/usr/bin/env bash
# Builds dfscan's release binaries and installs them into a bin directory on
# PATH, so that the README's `dfscan ...` and `dfscan-coordinator ...` commands
# run from anywhere:
#
#   scripts/install.sh            # into ${CARGO_HOME:-~/.cargo}/bin (on PATH with rustup)
#   DFSCAN_BIN_DIR=DIR scripts/install.sh
#
# It is one `cargo build --release`, the same build as `cargo run --release`
# and `target/release/...`, so nothing is compiled twice; the binaries are
# copied out of it (they keep working after `cargo clean`). build.rs bakes
# the absolute path of libtorch in the virtualenv that scripts/setup.sh made
# (outside the clone) into `dfscan`, so the copy finds libtorch from any
# directory. Run scripts/setup.sh first; rerun this after pulling changes.
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
bin_dir=${DFSCAN_BIN_DIR:-${CARGO_HOME:-$HOME/.cargo}/bin}
target_dir=${CARGO_TARGET_DIR:-$repo/target}

# What is installed, as PACKAGE:BINARY (a binary moved to another package
# changes its entry here).
binaries=(dfscan:dfscan dfscan-process:dfscan-coordinator)

log() { printf '[install] %s\n' "$*" >&2; }

if [ ! -e "$repo/.venv" ]; then
  log "no .venv (libtorch): run scripts/setup.sh first"
  exit 1
fi

args=()
for entry in "${binaries[@]}"; do
  args+=(-p "${entry%%:*}" --bin "${entry#*:}")
done
log "building ${binaries[*]#*:} (release)"
(cd "$repo" && cargo build --release --locked "${args[@]}")

mkdir -p "$bin_dir"
for entry in "${binaries[@]}"; do
  name=${entry#*:}
  # A new file renamed over the old one: a running dfscan keeps its binary,
  # where writing into it would fail ("text file busy").
  install -m 0755 "$target_dir/release/$name" "$bin_dir/.$name.new"
  mv -f "$bin_dir/.$name.new" "$bin_dir/$name"
  log "installed $bin_dir/$name ($("$bin_dir/$name" --version))"
done

# Whether the commands now resolve to these copies.
for entry in "${binaries[@]}"; do
  name=${entry#*:}
  found=$(command -v "$name" || true)
  if [ "$found" != "$bin_dir/$name" ]; then
    log "note: \`$name\` on PATH is ${found:-nothing}, not $bin_dir/$name: add $bin_dir to PATH (export PATH=\"$bin_dir:\$PATH\")"
  fi
done
