#!/usr/bin/env bash
# Takes a PNG screenshot of each web page (front page, job, build,
# deployments, comparison, error) with the browser-test harness: headless
# Chromium through chromedriver on a server filled with the test sample.
# Writes docs/screenshots/*.png (or into $UKREPO_SCREENSHOTS).
#
#   scripts/screenshots.sh
set -euo pipefail
cd "$(dirname "$0")/.."

pkgs=(chromium chromium-driver)
missing=()
for p in "${pkgs[@]}"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
if [ ${#missing[@]} -gt 0 ]; then
  echo "screenshots.sh: installing ${missing[*]}" >&2
  SUDO=; [ "$(id -u)" -eq 0 ] || SUDO=sudo
  $SUDO apt-get update -qq >&2
  $SUDO apt-get install -y -qq "${missing[@]}" >&2
fi

# The sample's builds are Solo5 images.
scripts/solo5.sh >/dev/null
export UKREPO_SCREENSHOTS="${UKREPO_SCREENSHOTS:-$PWD/docs/screenshots}"
cargo test -p ukrepo-tests --test browser -- --ignored --exact screenshots --nocapture
