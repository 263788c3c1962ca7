#!/usr/bin/env bash
# Builds the Debian packages into target/debian/ with cargo-deb:
#   unikernel-repo   the server, its systemd unit, a system user, /var/lib/unikernel-repo
#   unikernel-host   upload, fetch-latest, compare-hash, deploy-hvt, the host
#                    scripts in /usr/lib/unikernel-repo/, the host units
# both with man pages and bash/zsh/fish completions generated from the clap
# definitions (ukrepo-docgen). Prints each binary's size against its target.
#
#   scripts/package.sh                  # release profile (stripped, LTO): what ships
#   scripts/package.sh --profile dev --no-build
#                                       # the tests' quick variant: the debug
#                                       # binaries scripts/test.sh already built
#
# cargo-deb is installed into target/tools/ when it is missing.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"

profile=release build=1
while [ $# -gt 0 ]; do
  case $1 in
    --profile) profile=${2:?--profile needs a name}; shift 2 ;;
    --no-build) build=; shift ;;
    *) echo "usage: $0 [--profile release|dev] [--no-build]" >&2; exit 2 ;;
  esac
done
dir=$profile; [ "$profile" = dev ] && dir=debug

scripts/tools.sh cargo-deb >/dev/null
export PATH="$root/target/tools/bin:$PATH"

[ -z "$build" ] || cargo build --profile "$profile" --workspace --bins >&2
"target/$dir/ukrepo-docgen" target/assets
mkdir -p target/debian
fast=(); [ "$profile" = release ] || fast=(--fast)
for pkg in unikernel-repo deploy-hvt; do
  cargo deb -q -p "$pkg" --profile "$profile" --no-build "${fast[@]}" -o target/debian/ >&2
done

# Size targets (issue 14): each CLI tool <= 5 MB, the server <= 12 MB (stripped).
status=0
printf '%-16s %10s %10s\n' binary bytes target >&2
for b in unikernel-repo upload fetch-latest compare-hash deploy-hvt; do
  size=$(stat -c %s "target/$dir/$b")
  limit=$((5 * 1000 * 1000)); [ "$b" = unikernel-repo ] && limit=$((12 * 1000 * 1000))
  mark=ok
  if [ "$size" -gt "$limit" ]; then mark=OVER; [ "$profile" = release ] && status=1; fi
  printf '%-16s %10d %10d %s\n' "$b" "$size" "$limit" "$mark" >&2
done
ls target/debian/*.deb
exit $status
