#!/usr/bin/env bash
# The test command: set up (idempotent, cached), then formatting, lints,
# dependency checks (cargo-deny, offline) and the whole test suite. This is
# what CI runs (.ci/run). Every test binary runs even when an earlier one
# fails (--no-fail-fast), so a failure report is complete.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

scripts/setup.sh
cargo fmt --all -- --check
cargo clippy --workspace --all-targets --locked -- -D warnings
scripts/deny.sh
cargo test --workspace --locked --no-fail-fast
