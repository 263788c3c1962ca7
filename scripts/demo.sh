#!/usr/bin/env bash
# The whole pipeline on one machine, start to finish, for a new user:
# builds the tools and Solo5 (scripts/solo5.sh), starts unikernel-repo on a
# temporary data dir, uploads v1 of a real unikernel with `upload`, deploys
# it with scripts/deploy-latest.sh under solo5-hvt (solo5-spt where /dev/kvm
# cannot be opened), uploads v2 and deploys it, uploads a broken v3 and shows
# the automatic rollback to v2; kills the tender and shows the watcher's
# supervision starting it again; rolls back to v1 by hand and shows the cron
# job keeping it there (sticky); holds the host and shows a new upload not
# deployed until unhold; then stops everything it started.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"

say() { printf '\n\033[1m==> %s\033[0m\n' "$*" >&2; }

say "building the tools (cargo build --release) and Solo5 (scripts/solo5.sh)"
cargo build --release --quiet --workspace
solo5=$(scripts/solo5.sh)
export PATH="$root/target/release:$root/scripts:$PATH"

if [ -r /dev/kvm ] && [ -w /dev/kvm ]; then target=hvt; else target=spt; fi
work=$(mktemp -d /tmp/unikernel-demo.XXXXXX)
server_pid= watcher_pid=
cleanup() {
  [ -n "$watcher_pid" ] && kill "$watcher_pid" 2>/dev/null && wait "$watcher_pid" 2>/dev/null
  deploy-hvt stop --config "$work/web.toml" >/dev/null 2>&1 || true
  [ -n "$server_pid" ] && kill "$server_pid" 2>/dev/null && wait "$server_pid" 2>/dev/null
  rm -rf "$work"
}
trap cleanup EXIT

say "starting unikernel-repo on a temporary data dir ($work/repo)"
export UKREPO_DATA_DIR="$work/repo"
echo "demo-password" | unikernel-repo user add ci --unrestricted
unikernel-repo job add web
unikernel-repo serve --listen 127.0.0.1:0 >"$work/serve.out" 2>"$work/serve.log" &
server_pid=$!
for _ in $(seq 100); do grep -q '^listening on ' "$work/serve.out" 2>/dev/null && break; sleep 0.1; done
UKREPO_URL=$(sed -n 's/^listening on //p' "$work/serve.out")
[ -n "$UKREPO_URL" ] || { echo "demo: the server did not start" >&2; cat "$work/serve.log" >&2; exit 2; }
export UKREPO_URL UKREPO_USER=ci UKREPO_PASSWORD=demo-password UKREPO_PLATFORM=demo
echo "repository: $UKREPO_URL" >&2

cat >"$work/web.toml" <<TOML
name = "web"
state_dir = "$work/host"
tender = "$solo5/bin/solo5-$target"
tender_args = ["--mem=32"]
args = ["demo"]
restart = "builtin"
keep = 3
[health]
settle = "500ms"
timeout = "5s"
console = "(?m)^ready\$"
TOML
echo "host config ($work/web.toml), tender solo5-$target" >&2

show() {
  echo "--- deploy-hvt status" >&2
  deploy-hvt status --config "$work/web.toml" >&2 || true
  echo "--- console of the running unikernel (console.log is appended to: its last start)" >&2
  grep -E '^(version|ready)' "$work/host/web/console.log" | tail -n 2 >&2 || true
}

deploy() {
  set +e
  deploy-latest.sh web "$work/web.toml"
  rc=$?
  set -e
  echo "deploy-latest.sh exit code: $rc" >&2
  return 0
}

say "CI uploads v1"
upload --job web --name web.$target "$solo5/images/ticker-v1.$target"
say "the host's cron job deploys it"
deploy; show

say "nothing new: the cron job is silent and exits 0"
deploy

say "CI uploads v2; the host deploys it"
upload --job web --name web.$target "$solo5/images/ticker-v2.$target"
deploy; show

say "CI uploads a broken v3 (it exits at once); the host tries it and rolls back to v2"
upload --job web --name web.$target "$solo5/images/crash.$target"
deploy; show

say "the broken build is not retried every minute: silent, exit 0"
deploy

say "the watcher keeps the tender running: kill -9 it, and it is back at once"
watch-deploy.sh web "$work/web.toml" 2>"$work/watcher.log" &
watcher_pid=$!
pid_of() { { deploy-hvt status --config "$work/web.toml" --json || true; } | sed -n 's/.*"running":{"pid":\([0-9]*\).*/\1/p'; }
for _ in $(seq 100); do grep -q supervise <(ps -o args= --ppid "$watcher_pid") && break; sleep 0.1; done
old=$(pid_of)
echo "killing the tender (pid $old) with SIGKILL" >&2
kill -9 "$old"
start=$(date +%s%N)
new=
for _ in $(seq 200); do new=$(pid_of); [ -n "$new" ] && [ "$new" != "$old" ] && break; sleep 0.01; done
echo "a new tender (pid $new) runs $(( ($(date +%s%N) - start) / 1000000 )) ms later; once healthy, the watcher says:" >&2
for _ in $(seq 100); do grep -q restarted "$work/watcher.log" && break; sleep 0.1; done
grep restarted "$work/watcher.log" >&2 || true
kill "$watcher_pid"; wait "$watcher_pid" 2>/dev/null || true; watcher_pid=
echo "the watcher is stopped (SIGTERM); the unikernel keeps running" >&2

say "the operator rolls back to v1 by hand: it sticks"
deploy-hvt rollback --config "$work/web.toml"
say "the next cron run does not undo the rollback (silent, exit 0)"
deploy; show

say "the operator holds the host; CI uploads v3: not deployed, the cron job stays silent"
deploy-hvt hold --config "$work/web.toml" --reason "demo: release freeze"
upload --job web --name web.$target "$solo5/images/ticker-v3.$target"
deploy; show

say "unhold: the next cron run deploys v3"
deploy-hvt unhold --config "$work/web.toml"
deploy; show

say "what the repository heard from the host (deployment reports, newest first)"
curl -sf -H 'Accept: application/json' "$UKREPO_URL/job/web/deployments" | sed 's/.*"history":\[//' | tr '{' '\n' |
  sed -n 's/.*"sha256":"\([0-9a-f]\{12\}\)[0-9a-f]*","result":"\([a-z-]*\)","action":"\([a-z-]*\)".*/  \3: \2 (\1…)/p' >&2 || true

say "done; stopping the unikernel and the repository"
