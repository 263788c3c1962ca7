#!/usr/bin/env bash
# Builds Solo5 v0.7.2 (tenders, solo5-elftool, the x86_64-solo5-none-static-cc
# toolchain) and our test unikernels from tests/unikernels/ into target/solo5/.
#
# Solo5 has no Debian package; the crate solo5-sys 0.1.0 ships its complete
# v0.7.2 source, so we fetch that crate with cargo as a plain source download
# (it is never built as a dependency: its build script needs bindgen).
# Idempotent and safe to run concurrently (flock); prints the output folder.
#
#   scripts/solo5.sh            # build (or reuse) everything, print the folder
#   SOLO5_OUT=/opt/solo5 scripts/solo5.sh
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
out=${SOLO5_OUT:-$root/target/solo5}
mkdir -p "$out"
exec 9>"$out/.lock"
flock 9

log() { echo "solo5.sh: $*" >&2; }

need_pkgs=()
for p in libseccomp-dev pkg-config make gcc flock; do
  case $p in
    flock) command -v flock >/dev/null || need_pkgs+=(util-linux) ;;
    *) dpkg -s "$p" >/dev/null 2>&1 || need_pkgs+=("$p") ;;
  esac
done
if [ ${#need_pkgs[@]} -gt 0 ]; then
  log "installing ${need_pkgs[*]}"
  if [ "$(id -u)" -ne 0 ]; then SUDO=sudo; else SUDO=; fi
  $SUDO apt-get update -qq >&2
  $SUDO apt-get install -y -qq "${need_pkgs[@]}" >&2
fi

src="$out/src/solo5"
if [ ! -x "$out/bin/solo5-hvt" ] || [ ! -x "$out/bin/solo5-spt" ] || [ ! -x "$out/bin/solo5-elftool" ]; then
  log "fetching solo5-sys 0.1.0 (Solo5 v0.7.2 source)"
  fetch="$out/fetch"
  mkdir -p "$fetch"
  cat >"$fetch/Cargo.toml" <<'TOML'
[package]
name = "solo5-source-fetch"
version = "0.0.0"
edition = "2021"
publish = false
[lib]
path = "lib.rs"
[dependencies]
solo5-sys = "=0.1.0"
[workspace]
TOML
  : >"$fetch/lib.rs"
  cargo fetch --quiet --manifest-path "$fetch/Cargo.toml" >&2
  crate=$(find "${CARGO_HOME:-$HOME/.cargo}/registry/cache" -name 'solo5-sys-0.1.0.crate' | head -n 1)
  [ -n "$crate" ] || { log "error: solo5-sys-0.1.0.crate not found after cargo fetch"; exit 2; }
  rm -rf "$out/src" && mkdir -p "$out/src"
  tar -xzf "$crate" -C "$out/src"
  mv "$out/src/solo5-sys-0.1.0/solo5" "$src"
  rm -rf "$out/src/solo5-sys-0.1.0"
  # The tree is not a git checkout, so gen_version_h.sh wants a .distrib copy.
  printf '/* Solo5 v0.7.2 from the solo5-sys 0.1.0 crate */\n#ifndef __VERSION_H__\n#define __VERSION_H__\n#define SOLO5_VERSION "v0.7.2"\n#endif\n' \
    >"$src/include/version.h.distrib"
  log "building Solo5"
  (cd "$src" && ./configure.sh >&2 && make -j"$(nproc)" >&2)
  mkdir -p "$out/bin"
  cp "$src/tenders/hvt/solo5-hvt" "$src/tenders/spt/solo5-spt" "$src/elftool/solo5-elftool" "$out/bin/"
fi

# The toolchain wrappers live in the source tree (they find their own crt and
# ldscripts there).
cc="$src/toolchain/bin/x86_64-solo5-none-static-cc"
[ -x "$cc" ] || { log "error: toolchain $cc missing"; exit 2; }
elftool="$out/bin/solo5-elftool"

# Test unikernels: every tests/unikernels/NAME.c, for hvt and spt, with the
# manifest NAME.json when present (else manifest.json). Versioned builds of the
# "ticker" are made with UK_VERSION so the pipeline test has distinct images.
img="$out/images"
mkdir -p "$img"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
build() { # build NAME SRC MANIFEST CFLAGS...
  local name=$1 csrc=$2 mft=$3; shift 3
  "$elftool" gen-manifest "$mft" "$work/$name.mft.c"
  "$cc" -std=c11 -Wall -Werror -O2 "$@" -c "$work/$name.mft.c" -o "$work/$name.mft.o"
  "$cc" -std=c11 -Wall -Werror -O2 "$@" -c "$csrc" -o "$work/$name.o"
  for t in hvt spt; do
    "$cc" -z solo5-abi=$t "$work/$name.o" "$work/$name.mft.o" -o "$work/$name.$t"
    mv -f "$work/$name.$t" "$img/$name.$t"
  done
}
uk="$root/tests/unikernels"
stamp=$(cat "$uk"/*.c "$uk"/*.json "$0" | sha256sum | cut -c1-64)
if [ "$(cat "$img/.stamp" 2>/dev/null)" != "$stamp" ]; then
  log "building test unikernels"
  for c in "$uk"/*.c; do
    n=$(basename "$c" .c)
    m="$uk/$n.json"; [ -f "$m" ] || m="$uk/manifest.json"
    build "$n" "$c" "$m"
  done
  for v in v1 v2 v3; do
    build "ticker-$v" "$uk/ticker.c" "$uk/manifest.json" "-DUK_VERSION=\"$v\""
  done
  echo "$stamp" >"$img/.stamp"
fi
echo "$out"
