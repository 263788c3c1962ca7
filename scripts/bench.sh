#!/usr/bin/env bash
# Benchmarks against the tools people use today, side by side in one run:
# nginx (WebDAV PUT, static files, `return 302`), curl, sha256sum, openssl,
# and a bare kill + start of the tender. Installs nginx-light, wrk and
# hyperfine from Debian, builds release binaries and Solo5, then runs
# scripts/bench.py, which prints the table and writes target/bench/results.json.
#
#   scripts/bench.sh              # full run (512 MiB images, 1 GiB memory row)
#   BENCH_QUICK=1 scripts/bench.sh   # small sizes, for a smoke test
set -euo pipefail
cd "$(dirname "$0")/.."

pkgs=(nginx-light wrk hyperfine curl openssl time python3 libseccomp-dev pkg-config make gcc)
missing=()
for p in "${pkgs[@]}"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
if [ ${#missing[@]} -gt 0 ]; then
  echo "bench.sh: installing ${missing[*]}" >&2
  SUDO=; [ "$(id -u)" -eq 0 ] || SUDO=sudo
  $SUDO apt-get update -qq >&2
  $SUDO apt-get install -y -qq "${missing[@]}" >&2
fi
# Debian starts nginx on port 80 when it is installed; we run our own.
pkill -x nginx 2>/dev/null || true

# More than one machine (docs/benchmarks.md): PostgreSQL and s3s-fs, started
# by scripts/bench_scale.py itself; BENCH_SCALE=0 leaves these rows out.
bench_scale() {
  [ "${BENCH_SCALE:-1}" = 1 ] || return 0
  dpkg -s postgresql >/dev/null 2>&1 || { SUDO=; [ "$(id -u)" -eq 0 ] || SUDO=sudo; $SUDO apt-get install -y -qq postgresql >&2; }
  scripts/tools.sh s3s-fs >/dev/null
  python3 scripts/bench_scale.py --bin target/release --out target/bench
}

cargo build --release --quiet --workspace
solo5=$(scripts/solo5.sh)
python3 scripts/bench.py --bin target/release --solo5 "$solo5" --out target/bench "$@"
bench_scale "$@"
