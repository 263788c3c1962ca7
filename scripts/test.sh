#!/usr/bin/env bash
# Runs every test of the workspace, on a fresh Debian machine too: installs
# the Debian packages the tests use, builds Solo5 and the test unikernels
# (scripts/solo5.sh), then runs cargo nextest over the whole workspace.
#
#   scripts/test.sh                 # everything
#   scripts/test.sh -E 'test(pipeline)'   # extra arguments go to nextest
set -euo pipefail
cd "$(dirname "$0")/.."

# time: GNU time measures the tools' peak RSS; libseccomp-dev, pkg-config,
# make, gcc: the Solo5 build; iproute2: network namespaces for tap devices;
# minisign: signature interop;
# curl: the scripts; chromium, chromium-driver: the browser tests.
pkgs=(time libseccomp-dev pkg-config make gcc iproute2 curl minisign chromium chromium-driver)
missing=()
for p in "${pkgs[@]}"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
if [ ${#missing[@]} -gt 0 ]; then
  echo "test.sh: installing ${missing[*]}" >&2
  SUDO=; [ "$(id -u)" -eq 0 ] || SUDO=sudo
  $SUDO apt-get update -qq >&2
  $SUDO apt-get install -y -qq "${missing[@]}" >&2
fi

scripts/solo5.sh >/dev/null
# The end-to-end tests run the workspace's binaries, which cargo builds for a
# test run only when their own package has integration tests: build them all.
cargo build --workspace --bins

if cargo nextest --version >/dev/null 2>&1; then
  exec cargo nextest run --workspace --no-fail-fast "$@"
else
  echo "test.sh: cargo-nextest not found, using cargo test" >&2
  exec cargo test --workspace --no-fail-fast "$@"
fi
