#!/usr/bin/env bash
# The host's watcher for one unikernel: deploys a new build of JOB within a
# second of its upload, and keeps its tender running. It runs
#   deploy-hvt supervise   in the background: a tender that dies is started
#                          again within about its settle time;
# and loops:
#   deploy-latest.sh       one round (see there): decide about the latest build;
#   fetch-latest --wait    one long-poll, held while the build just decided
#                          about is still the latest (a re-upload of the same
#                          image as a new build wakes it too; so does a
#                          change of state/decided: unhold, --retry-failed);
# errors back off (1 s doubling to 60 s). Deployment reports go to the
# repository when a credential is set (see README). SIGTERM or SIGINT end it
# and everything it started within a second; the tender keeps running.
#
#   UKREPO_URL=https://builds.example.org watch-deploy.sh JOB CONFIG
#
# UKREPO_PLATFORM picks a platform; UKREPO_WATCH_WAIT sets the long-poll
# length (default 300s). Tools are found as deploy-latest.sh finds them.
set -uo pipefail
export PATH=${PATH:-/usr/bin:/bin}
me=watch-deploy.sh

[ $# -eq 2 ] || { echo "usage: UKREPO_URL=URL $0 JOB CONFIG" >&2; exit 2; }
job=$1 config=$2
[ -n "${UKREPO_URL:-}" ] || { echo "$me: UKREPO_URL is not set" >&2; exit 2; }
wait=${UKREPO_WATCH_WAIT:-300s}

here=$(cd "$(dirname "$0")" && pwd) || exit 2
# shellcheck source=find-tool.sh
. "$here/find-tool.sh" || exit 2
fetch_latest=$(tool fetch-latest) && deploy_hvt=$(tool deploy-hvt) && deploy_latest=$(tool deploy-latest.sh) || exit 2
state=$("$deploy_hvt" status --config "$config" --print-dir) || exit 2

supervisor= child= tick=
stop() {
  trap - TERM INT
  [ -n "$tick" ] && kill "$tick" 2>/dev/null
  for p in $child $supervisor; do kill -TERM -- "-$p" 2>/dev/null; done
  wait
  exit 0
}
trap stop TERM INT

# Runs a command in the background, in a process group of its own (so that
# the trap stops all of it), and waits for it: a signal is then handled at
# once (bash runs traps only between foreground commands).
run() {
  setsid "$@" &
  child=$!
  wait "$child"
  local rc=$?
  child=
  return $rc
}

setsid "$deploy_hvt" supervise --config "$config" &
supervisor=$!

# One long-poll for a build other than the one decided about. It ends early
# when state/decided changes (unhold, deploy --retry-failed, a deploy by
# hand), so that the next round reconsiders the latest build at once.
poll() {
  setsid "$fetch_latest" --job "$job" --print-build --wait "$wait" --if-differs-from "$decided" >/dev/null &
  child=$!
  local finished rc now
  while true; do
    sleep 1 &
    tick=$!
    wait -n -p finished "$child" "$tick"
    rc=$?
    if [ "$finished" = "$child" ]; then
      kill "$tick" 2>/dev/null
      wait "$tick"
      child= tick=
      return $rc
    fi
    tick= now=
    read -r now _ 2>/dev/null <"$state/decided"
    if [ "$now" != "$decided" ]; then
      kill -TERM -- "-$child" 2>/dev/null
      wait "$child"
      child=
      return 0
    fi
  done
}

backoff=1
pause() {
  echo "$me: $1; retrying in ${backoff}s" >&2
  run sleep "$backoff"
  backoff=$((backoff < 60 ? backoff * 2 : 60))
}
while true; do
  run "$deploy_latest" "$job" "$config"
  rc=$?
  decided=
  read -r decided _ 2>/dev/null <"$state/decided"
  if [ "$rc" -eq 2 ] || [ -z "$decided" ]; then
    pause "deploy-latest.sh ended with exit $rc"
    continue
  fi
  poll
  case $? in
    0) backoff=1 ;;                                           # a new build: decide about it
    1) run "$deploy_hvt" report --config "$config"; backoff=1 ;; # nothing new: send pending reports
    *) pause "fetch-latest failed" ;;
  esac
done
