#!/usr/bin/env bash
# The host's cron job for one unikernel: fetch-latest -> compare-hash ->
# deploy-hvt. Silent with exit 0 when there is nothing new (including a
# latest build that already failed its health check here, unless
# --retry-failed); otherwise the exit code of the step that ended it
# (0 deployed, 2 error, 3 rolled back, 4 rollback failed).
#
#   UKREPO_URL=https://builds.example.org scripts/deploy-latest.sh JOB CONFIG [--retry-failed]
#
# The repository comes from UKREPO_URL, the platform from UKREPO_PLATFORM if
# set; upload, fetch-latest, compare-hash and deploy-hvt must be on PATH.
set -uo pipefail

usage() { echo "usage: UKREPO_URL=URL $0 JOB CONFIG [--retry-failed]" >&2; exit 2; }
[ $# -ge 2 ] && [ $# -le 3 ] || usage
job=$1 config=$2 retry=
case "${3:-}" in
  "") ;;
  --retry-failed) retry=--retry-failed ;;
  *) usage ;;
esac
[ -n "${UKREPO_URL:-}" ] || { echo "deploy-latest.sh: UKREPO_URL is not set" >&2; exit 2; }

state=$(deploy-hvt status --config "$config" --print-dir) || exit 2
sha=$(fetch-latest --job "$job" --print-sha256) || exit $?

# An image that already failed here is not tried every minute.
if [ -z "$retry" ] && grep -qx "$sha" "$state/failed" 2>/dev/null; then
  exit 0
fi
compare-hash --missing-ok "$sha" "$state/current"
case $? in
  0) exit 0 ;;        # already current
  1) ;;               # new
  *) exit 2 ;;
esac

mkdir -p "$state" || exit 2
incoming="$state/incoming"
trap 'rm -f "$incoming" "$incoming.minisig"' EXIT
fetch-latest --job "$job" --output "$incoming" >/dev/null || exit $?
deploy-hvt deploy --config "$config" --expect-sha256 "$sha" $retry "$incoming"
