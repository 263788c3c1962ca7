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
#
#   scripts/test.sh                           # everything
#   scripts/test.sh -E 'test(pipeline)'       # extra arguments go to nextest
#   UKREPO_SKIP_LINTS=1 scripts/test.sh ...   # tests only
set -euo pipefail
cd "$(dirname "$0")/.."

# time: GNU time measures the tools' peak RSS; libseccomp-dev, pkg-config,
# make, gcc: the Solo5 build; iproute2: network namespaces for tap devices;
# minisign: signature interop; openssl: the TLS first-run recipe; man-db and
# dpkg: the package test; strace: the durability-order test; chromium,
# chromium-driver: the browser tests; curl: the scripts.
pkgs=(time libseccomp-dev pkg-config make gcc iproute2 curl minisign openssl man-db dpkg strace chromium chromium-driver)
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
# The end-to-end tests run the workspace's binaries, which cargo builds for a
# test run only when their own package has integration tests: build them all.
# deploy-hvt's crash points exist only in test builds (the feature).
features=(--features deploy-hvt/fault-injection)
cargo build --workspace --bins "${features[@]}"

if cargo nextest --version >/dev/null 2>&1; then
  exec cargo nextest run --workspace --no-fail-fast "${features[@]}" "$@"
else
  echo "test.sh: cargo-nextest not found, using cargo test" >&2
  exec cargo test --workspace --no-fail-fast "${features[@]}" "$@"
fi
