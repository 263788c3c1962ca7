#!/usr/bin/env bash
# Runs every check of the workspace, on a fresh Debian machine too (this is
# what CI runs): installs the Debian packages the tests use and the cargo
# tools the checks use (into target/tools/), builds Solo5 and the test
# unikernels (scripts/solo5.sh), then
#   cargo fmt --check
#   cargo clippy --workspace --all-targets -- -D warnings
#   cargo deny check licenses bans sources     (advisories need the network)
#   cargo machete                              (unused dependencies)
#   cargo nextest run --workspace              (every test)
#   the shared suites again on SQLite + S3 and on PostgreSQL + S3
#   (UKREPO_TEST_BACKEND, see tests/src/backend.rs), against a throwaway
#   PostgreSQL cluster and an s3s-fs server that the tests start
#
#   scripts/test.sh                           # everything
#   scripts/test.sh -E 'test(pipeline)'       # extra arguments go to nextest
#   UKREPO_SKIP_LINTS=1 scripts/test.sh ...   # tests only
#   UKREPO_SKIP_SCALE=1 ...                    # skip the tests that need PostgreSQL and s3s-fs
set -euo pipefail
cd "$(dirname "$0")/.."

# time: GNU time measures the tools' peak RSS; libseccomp-dev, pkg-config,
# make, gcc: the Solo5 build; iproute2: network namespaces for tap devices;
# minisign: signature interop; openssl: the TLS first-run recipe; man-db and
# dpkg: the package test; strace: the durability-order test; chromium,
# chromium-driver: the browser tests; curl: the scripts; postgresql: the
# replicas' shared database (the tests run their own cluster, never the
# service).
pkgs=(time libseccomp-dev pkg-config make gcc iproute2 curl minisign openssl man-db dpkg strace chromium chromium-driver postgresql)
missing=()
for p in "${pkgs[@]}"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
if [ ${#missing[@]} -gt 0 ]; then
  echo "test.sh: installing ${missing[*]}" >&2
  SUDO=; [ "$(id -u)" -eq 0 ] || SUDO=sudo
  $SUDO apt-get update -qq >&2
  $SUDO apt-get install -y -qq "${missing[@]}" >&2
fi

if [ "${UKREPO_SKIP_LINTS:-}" != 1 ]; then
  echo "test.sh: cargo fmt --check" >&2
  cargo fmt --all --check
  tools=$(scripts/tools.sh cargo-deny cargo-machete cargo-deb)
  echo "test.sh: cargo deny check licenses bans sources" >&2
  "$tools/cargo-deny" --log-level error check licenses bans sources
  echo "test.sh: cargo machete (unused dependencies)" >&2
  "$tools/cargo-machete"
  echo "test.sh: cargo clippy" >&2
  cargo clippy --quiet --workspace --all-targets -- -D warnings
fi

scripts/solo5.sh >/dev/null
# The S3 server of the scale-out tests (tests/src/services.rs finds it there);
# UKREPO_SKIP_SCALE=1 leaves out everything that needs it or PostgreSQL.
backends=(s3 postgres-s3)
if [ "${UKREPO_SKIP_SCALE:-}" = 1 ]; then
  backends=()
else
  scripts/tools.sh s3s-fs >/dev/null
fi
# The end-to-end tests run the workspace's binaries, which cargo builds for a
# test run only when their own package has integration tests: build them all.
# deploy-hvt's crash points exist only in test builds (the feature).
features=(--features deploy-hvt/fault-injection)
cargo build --workspace --bins "${features[@]}"

# The suites every configuration must pass (CONTRACT.md §9): run again on
# each scale-out backend after the whole run, unless arguments (a filter)
# were given.
shared='binary(api) | binary(upload_rules) | binary(crash) | binary(hostile_inputs) | binary(builder_web) | binary(pages_json) | binary(client_replay) | binary(operations)'
status=0
if cargo nextest --version >/dev/null 2>&1; then
  cargo nextest run --workspace --no-fail-fast "${features[@]}" "$@" || status=$?
  if [ $# -eq 0 ]; then
    for backend in "${backends[@]}"; do
      echo "test.sh: the shared suites on $backend" >&2
      UKREPO_TEST_BACKEND=$backend cargo nextest run --workspace --no-fail-fast "${features[@]}" -E "$shared" || status=$?
    done
  fi
else
  echo "test.sh: cargo-nextest not found, using cargo test" >&2
  cargo test --workspace --no-fail-fast "${features[@]}" "$@" || status=$?
  if [ $# -eq 0 ]; then
    for backend in "${backends[@]}"; do
      echo "test.sh: the shared suites on $backend" >&2
      UKREPO_TEST_BACKEND=$backend cargo test --workspace --no-fail-fast "${features[@]}" \
        --test api --test upload_rules --test crash --test hostile_inputs --test builder_web --test pages_json --test client_replay --test operations || status=$?
    done
  fi
fi
exit $status
