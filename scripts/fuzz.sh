#!/usr/bin/env bash
# Property-based fuzzing, for a bounded time, of the parsers that see
# untrusted bytes: the Solo5 note reader (random bytes, mutated and truncated
# real images), the token parser and verifier, and the name parsers.
# (cargo fuzz needs a nightly toolchain, which this project's machines do not
# have; proptest runs on stable.) Any failing case proptest finds is written
# to the crate's proptest-regressions/ folder: commit it, and every later
# `cargo test` replays it as a regression test.
#
#   scripts/fuzz.sh                  # 100000 cases per property, at most 10 minutes
#   FUZZ_CASES=1000000 FUZZ_SECONDS=3600 scripts/fuzz.sh
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/solo5.sh >/dev/null
export PROPTEST_CASES=${FUZZ_CASES:-100000}
exec timeout "${FUZZ_SECONDS:-600}" cargo test --release -p solo5-elf -p uk-names -p uk-tokens -- --test-threads 2
