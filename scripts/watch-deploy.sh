#!/usr/bin/env bash
# The host's watcher for one unikernel: deploys a new build of JOB within a
# second of its upload. Each round is one long-poll (fetch-latest --wait),
# then deploy-hvt; errors back off (1 s doubling to 60 s). Deployment
# reports go to the repository when a credential is set (see README).
# The cron/timer path (deploy-latest.sh) stays as the fallback.
#
#   UKREPO_URL=https://builds.example.org scripts/watch-deploy.sh JOB CONFIG
#
# UKREPO_PLATFORM picks a platform; UKREPO_WATCH_WAIT sets the long-poll
# length (default 300s). Runs until killed.
set -uo pipefail

[ $# -eq 2 ] || { echo "usage: UKREPO_URL=URL $0 JOB CONFIG" >&2; exit 2; }
job=$1 config=$2
[ -n "${UKREPO_URL:-}" ] || { echo "watch-deploy.sh: UKREPO_URL is not set" >&2; exit 2; }
wait=${UKREPO_WATCH_WAIT:-300s}

state=$(deploy-hvt status --config "$config" --print-dir) || exit 2
mkdir -p "$state" || exit 2
incoming="$state/incoming"
trap 'rm -f "$incoming" "$incoming.minisig"' EXIT
trap 'exit 0' TERM INT

# What we last acted on: at first, what runs; after a deploy attempt, that
# build's digest (so a build that failed here is not fetched again and again).
seen="$state/current"
backoff=1
while true; do
  out=$(fetch-latest --job "$job" --wait "$wait" --if-differs-from "$seen" --output "$incoming")
  rc=$?
  case $rc in
    0)
      sha=${out%% *}
      deploy-hvt deploy --config "$config" --expect-sha256 "$sha" "$incoming"
      echo "watch-deploy.sh: deploying $sha ended with exit $?" >&2
      seen=$sha
      backoff=1
      ;;
    1)
      # Nothing new: a good moment to deliver reports that are still pending.
      deploy-hvt report --config "$config" || true
      backoff=1
      ;;
    *)
      echo "watch-deploy.sh: fetch-latest failed (exit $rc); retrying in ${backoff}s" >&2
      sleep "$backoff"
      backoff=$((backoff < 60 ? backoff * 2 : 60))
      ;;
  esac
done
