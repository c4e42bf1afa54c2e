#!/usr/bin/env bash
# Idempotent set-up: system packages (apt, when root), a venv that sees QGIS/GDAL from the system,
# and the Python dependencies with numpy pinned to the system version (DESIGN.md "Environment facts").
set -euo pipefail
cd "$(dirname "$0")/.."
APT_PKGS="qgis python3-qgis qgis-providers gdal-bin python3-gdal python3-rasterio python3-shapely python3-scipy python3-matplotlib python3-h5py python3-netcdf4 python3-venv xvfb xauth zip"
missing=""
for p in $APT_PKGS; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing="$missing $p"
done
if [ -n "$missing" ]; then
  if [ "$(id -u)" = "0" ] && command -v apt-get >/dev/null; then
    echo "[setup] installing system packages:$missing"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends $missing
  else
    echo "[setup] missing system packages:$missing" >&2
    echo "[setup] run: sudo apt-get install$missing   (then re-run make setup)" >&2
    exit 1
  fi
fi
if [ ! -x .venv/bin/python ]; then
  echo "[setup] creating .venv from /usr/bin/python3 with system site-packages"
  /usr/bin/python3 -m venv --system-site-packages .venv
fi
SYS_NUMPY=$(/usr/bin/python3 -c "import numpy; print(numpy.__version__)")
mkdir -p build
printf 'numpy==%s\n' "$SYS_NUMPY" > build/constraints.txt
PIP=".venv/bin/python -m pip"
$PIP install -q -c build/constraints.txt "torch==2.13.0" || $PIP install -q -c build/constraints.txt torch
$PIP install -q -c build/constraints.txt -e ".[test]"
# pyrsr brings pandas/numpy 2 through its dependencies; we only read its SRF package data.
$PIP install -q --no-deps "pyrsr>=0.4"
# Real data shipped in packages, read as package data only (no imports of their dependency trees):
# spyndex ships a real Sentinel-2 10 m tile, earthlib a library of real reflectance spectra.
$PIP install -q --no-deps "spyndex>=0.6" "earthlib>=1.1"
.venv/bin/python - <<'PY'
import numpy, rasterio, shapely, torch
from osgeo import gdal_array  # noqa: F401 (fails if numpy was swapped under GDAL)
assert int(numpy.__version__.split(".")[0]) < 2, f"numpy {numpy.__version__} in the venv breaks GDAL"
print(f"[setup] ok: numpy {numpy.__version__}, rasterio {rasterio.__version__}, torch {torch.__version__}")
PY
touch .venv/.csakd-setup-done
