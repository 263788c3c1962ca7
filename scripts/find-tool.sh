# Sourced by the host scripts (deploy-latest.sh, watch-deploy.sh,
# ci-upload.sh): `tool NAME` prints the path of a tool found on PATH, then
# beside the calling script, then in UKREPO_BIN_DIR, so the scripts work
# under cron's minimal environment (PATH=/usr/bin:/bin). Needs `here` (the
# calling script's folder) and `me` (its name, for messages).
tool() {
  local t
  if t=$(command -v "$1"); then echo "$t"; return; fi
  if [ -x "$here/$1" ]; then echo "$here/$1"; return; fi
  if [ -n "${UKREPO_BIN_DIR:-}" ] && [ -x "$UKREPO_BIN_DIR/$1" ]; then echo "$UKREPO_BIN_DIR/$1"; return; fi
  echo "$me: $1 not found on PATH, beside $0 or in UKREPO_BIN_DIR" >&2
  return 1
}
