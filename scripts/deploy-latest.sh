#!/usr/bin/env bash
# The host's cron job for one unikernel, one round of:
#   deploy-hvt start --unattended   (a tender that died is started again;
#                                    a new image that keeps dying is rolled back)
#   fetch-latest --print-build      (which build is the latest: sha256, uuid)
#   nothing if this host already decided about that build (state/decided)
#   compare-hash with current       (the same image as a new build: no download)
#   fetch-latest --build UUID       (exactly that build, with its signature)
#   deploy-hvt deploy --build UUID  (deployed, already-running, refused, rolled
#                                    back: one report to the repository)
# Silent with exit 0 when nothing changed (including a latest build that
# failed here before, or a host on hold); otherwise the exit code of the step
# that ended it (0 deployed, 2 error or refused, 3 rolled back, 4 rollback
# failed), with one line on stderr saying what changed.
#
#   UKREPO_URL=https://builds.example.org deploy-latest.sh JOB CONFIG [--retry-failed]
#
# The repository comes from UKREPO_URL, the platform from UKREPO_PLATFORM if
# set; UKREPO_VERIFY_KEY (or verify_key in CONFIG) requires signed images.
# The tools (fetch-latest, compare-hash, deploy-hvt) are looked for on
# PATH, then beside this script, then in UKREPO_BIN_DIR, so it runs under
# cron's minimal environment (PATH=/usr/bin:/bin).
set -uo pipefail
export PATH=${PATH:-/usr/bin:/bin}
me=deploy-latest.sh

usage() { echo "usage: UKREPO_URL=URL $0 JOB CONFIG [--retry-failed]" >&2; exit 2; }
[ $# -ge 2 ] && [ $# -le 3 ] || usage
job=$1 config=$2 retry=
case "${3:-}" in
  "") ;;
  --retry-failed) retry=--retry-failed ;;
  *) usage ;;
esac
[ -n "${UKREPO_URL:-}" ] || { echo "$me: UKREPO_URL is not set" >&2; exit 2; }

here=$(cd "$(dirname "$0")" && pwd) || exit 2
# shellcheck source=find-tool.sh
. "$here/find-tool.sh" || exit 2
fetch_latest=$(tool fetch-latest) && compare_hash=$(tool compare-hash) && deploy_hvt=$(tool deploy-hvt) || exit 2

state=$("$deploy_hvt" status --config "$config" --print-dir) || exit 2
# One round at a time per unikernel (the watcher and the cron job may both
# run): a lock on the state folder itself. deploy-hvt starts tenders with
# every inherited descriptor closed, so no tender ever holds it.
exec 9<"$state" || exit 2
flock -w 900 9 || { echo "$me: another round on $state did not finish in 15 minutes" >&2; exit 2; }

"$deploy_hvt" start --config "$config" --unattended
start_rc=$?
case $start_rc in
  0 | 1) start_rc=0 ;;
  3 | 4) ;;                  # said what happened; the latest build is still decided below
  *) start_rc=2 ;;
esac

latest=$("$fetch_latest" --job "$job" --print-build) || exit 2
read -r sha uuid <<<"$latest"
[ -n "${uuid:-}" ] || { echo "$me: fetch-latest printed ${latest@Q}" >&2; exit 2; }

if [ -z "$retry" ] && read -r decided _ 2>/dev/null <"$state/decided" && [ "$decided" = "$uuid" ]; then
  exit "$start_rc"         # this host already decided about this build
fi

incoming="$state/incoming"
rm -f "$incoming" "$incoming.minisig" "$incoming.build.json"
trap 'rm -f "$incoming" "$incoming.minisig" "$incoming.build.json"' EXIT
"$compare_hash" --missing-ok "$sha" "$state/current"
case $? in
  0) image="$state/current" ;;   # the running image as a new build: deploy-hvt says already-running
  1)
    # The signature is fetched with the image but checked by deploy-hvt, so
    # that a bad one is a decision (refused, reported once), not an error
    # every minute.
    env -u UKREPO_VERIFY_KEY "$fetch_latest" --job "$job" --build "$uuid" --output "$incoming" >/dev/null || exit $?
    image=$incoming
    ;;
  *) exit 2 ;;
esac
verify=()
[ -n "${UKREPO_VERIFY_KEY:-}" ] && verify=(--verify-key "$UKREPO_VERIFY_KEY")
"$deploy_hvt" deploy --config "$config" --job "$job" "${verify[@]}" --quiet --expect-sha256 "$sha" --build "$uuid" $retry "$image"
rc=$?
case $rc in
  0 | 1) exit "$start_rc" ;;     # deployed (said so), already running, held, failed here before
  *) exit "$rc" ;;
esac
