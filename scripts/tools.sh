#!/usr/bin/env bash
# Installs the cargo tools CI needs into target/tools/ (once per checkout),
# pinned, with --locked; prints their folder.
#   scripts/tools.sh cargo-deb cargo-deny cargo-machete s3s-fs
# (s3s-fs: the S3 server the scale-out tests run against; 0.14.1 is the
# newest that builds with this toolchain.)
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
tools="$root/target/tools"
mkdir -p "$tools"
exec 9>"$tools/.lock"
flock 9
for t in "$@"; do
  case $t in
    cargo-deb) version=3.8.0 ;;
    cargo-deny) version=0.20.2 ;;
    cargo-machete) version=0.9.2 ;;
    s3s-fs) version=0.14.1 ;;
    *) echo "tools.sh: unknown tool $t" >&2; exit 2 ;;
  esac
  if ! "$tools/bin/$t" --version 2>/dev/null | grep -q "$version"; then
    echo "tools.sh: installing $t $version into target/tools (once per checkout)" >&2
    features=()
    [ "$t" = s3s-fs ] && features=(--features binary)
    cargo install --quiet --locked --root "$tools" "${features[@]}" "$t@$version" >&2
  fi
done
echo "$tools/bin"
