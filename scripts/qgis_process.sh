#!/usr/bin/env bash
# Run qgis_process headless with an isolated profile, this checkout's plugin and the project venv.
# Usage: scripts/qgis_process.sh [qgis_process args...]   e.g. scripts/qgis_process.sh --json run csakd:fuse_classical ...
# Override CSAKD_QGIS_PROFILE (profile folder) and CSAKD_PLUGIN_DIR (folder that contains csakd_qgis/).
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
export QT_QPA_PLATFORM=offscreen
# QGIS's embedded Python finds its home through the first `python3` on PATH: another interpreter there
# (pyenv, conda, a venv) makes it load the wrong standard library and crash ("Couldn't load SIP module")
export PATH="/usr/bin:/bin${PATH:+:$PATH}"
unset PYTHONHOME
# no <input>.aux.xml files beside the user's rasters (QGIS would store statistics there); override to keep them
export GDAL_PAM_ENABLED="${GDAL_PAM_ENABLED:-NO}"
export QGIS_CUSTOM_CONFIG_PATH="${CSAKD_QGIS_PROFILE:-$ROOT/.qgis_profile}"
export QGIS_PLUGINPATH="${CSAKD_PLUGIN_DIR:-$ROOT}"
if [ -z "${CSAKD_NO_VENV:-}" ]; then
  SITE="$ROOT/.venv/lib/python3.11/site-packages"
  export PYTHONPATH="$SITE${PYTHONPATH:+:$PYTHONPATH}"
fi
export XDG_RUNTIME_DIR="${XDG_RUNTIME_DIR:-/tmp/runtime-$(id -u)}"
mkdir -p "$QGIS_CUSTOM_CONFIG_PATH" "$XDG_RUNTIME_DIR"; chmod 700 "$XDG_RUNTIME_DIR"
STAMP="$QGIS_CUSTOM_CONFIG_PATH/.csakd-enabled"
if [ ! -f "$STAMP" ]; then
  /usr/bin/qgis_process.bin plugins enable csakd_qgis >/dev/null 2>&1 || true
  touch "$STAMP"
fi
exec /usr/bin/qgis_process.bin "$@"
