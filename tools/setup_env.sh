#!/usr/bin/env bash
# Create (or bring up to date) the project environment in .venv/ at the repo
# root, from the pins in requirements.txt. Idempotent: when .venv/ already
# matches requirements.txt and setup.py it returns in about a second.
#
# The first run builds mmcv 2.1.0 from source (PyPI has no wheel for it):
# about 15-20 minutes on 2 cores. pip caches the built wheel, so later runs on
# the same machine take seconds.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
venv="$root/.venv"
py="$venv/bin/python"
stamp="$venv/.ailurus_env_stamp"
want="$(cat requirements.txt setup.py tools/setup_env.sh | sha256sum | cut -d' ' -f1)"

if [[ -x "$py" && -f "$stamp" && "$(cat "$stamp")" == "$want" ]]; then
  exit 0
fi

log() { printf '[setup_env] %s\n' "$*"; }
pin() { grep -E "^$1([=<>]|$)" requirements.txt | head -n1; }
pip_install() { "$py" -m pip install --disable-pip-version-check -q "$@"; }

if [[ ! -x "$py" ]]; then
  log "creating $venv"
  "${PYTHON:-python3}" -m venv "$venv"
fi

log "installing $(pin torch), build tools and numpy"
pip_install "$(pin torch)" "$(pin setuptools)" "$(pin wheel)" "$(pin numpy)"

if ! "$py" -c 'import mmcv, mmcv.ops' >/dev/null 2>&1; then
  log "installing $(pin mmcv) with compiled ops: the first build on a machine"
  log "takes about 15-20 min on 2 cores (later installs reuse pip's wheel cache)"
  build_log="$venv/mmcv_build.log"
  start=$SECONDS
  MMCV_WITH_OPS=1 MAX_JOBS="${MAX_JOBS:-$(nproc)}" "$py" -m pip install \
    --disable-pip-version-check --no-build-isolation "$(pin mmengine)" \
    "$(pin mmcv)" >"$build_log" 2>&1 &
  build_pid=$!
  while kill -0 "$build_pid" 2>/dev/null; do
    sleep 30
    if kill -0 "$build_pid" 2>/dev/null; then
      log "  still building mmcv: $(( (SECONDS - start) / 60 )) min elapsed (log: $build_log)"
    fi
  done
  if ! wait "$build_pid"; then
    tail -n 30 "$build_log"
    log "mmcv install failed; full log in $build_log"
    exit 1
  fi
  log "mmcv ready after $(( (SECONDS - start) / 60 )) min"
fi

log "installing the pinned mm stack and ailurus_mm (editable)"
pip_install --no-build-isolation -r requirements.txt -e .

"$py" -c 'import mmcv.ops, mmseg.models, mmdet.models, ailurus_mm.models' \
  >/dev/null
echo "$want" >"$stamp"
log "environment ready: $venv"
