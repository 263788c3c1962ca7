#!/usr/bin/env bash
# The CI step: upload a freshly built unikernel image and its build log.
# Prints the build's URL on stdout; the exit code is upload's (0 or 2).
#
#   UKREPO_URL=… UKREPO_USER=ci UKREPO_PASSWORD=… \
#     scripts/ci-upload.sh JOB IMAGE [BUILD_LOG] [-- extra upload flags]
#
# Credentials may instead be a token (UKREPO_TOKEN or --token-file after --).
# The platform defaults to the CI worker's (or UKREPO_PLATFORM).
set -euo pipefail

[ $# -ge 2 ] || { echo "usage: $0 JOB IMAGE [BUILD_LOG] [-- upload flags]" >&2; exit 2; }
job=$1 image=$2
shift 2
attach=()
if [ $# -gt 0 ] && [ "$1" != "--" ]; then
  attach=(--attach "console=$1")
  shift
fi
[ "${1:-}" = "--" ] && shift
[ -n "${UKREPO_URL:-}" ] || { echo "ci-upload.sh: UKREPO_URL is not set" >&2; exit 2; }

me=ci-upload.sh
here=$(cd "$(dirname "$0")" && pwd) || exit 2
# shellcheck source=find-tool.sh
. "$here/find-tool.sh" || exit 2
upload=$(tool upload) || exit 2
exec "$upload" --job "$job" "${attach[@]}" "$@" "$image"
