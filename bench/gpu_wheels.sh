#!/usr/bin/env bash
# Download the wheels bench/gpu_check.py needs on a GPU machine that has CuPy, Numba CUDA, NumPy,
# pandas, scikit-learn and scipy but no Dask or Hydra (and no package index): Python 3.12, x86-64.
#
#   bench/gpu_wheels.sh            # -> .whl/ (about 4 MB; kept out of git by .git/info/exclude)
#
# Then on the GPU machine, from the repository root, with .whl carried there:
#   python3 -m pip install -q --no-index --no-deps --no-compile --target /tmp/site .whl/*.whl \
#     && PYTHONPATH=/tmp/site:$PWD PYTHONUNBUFFERED=1 python3 bench/gpu_check.py
set -euo pipefail
cd "$(dirname "$0")/.."
DEST=${1:-.whl}
mkdir -p "$DEST"
case "$DEST" in
  /*) ;;  # outside the checkout
  *) grep -qxF "/$DEST/" .git/info/exclude 2>/dev/null || echo "/$DEST/" >> .git/info/exclude ;;
esac
version() {  # the version uv.lock pins
  awk -v n="$1" '$0 == "name = \"" n "\"" {getline; gsub(/version = |"/, ""); print; exit}' uv.lock
}
PKGS="dask distributed dask-cuda hydra-core omegaconf partd locket tblib zict tornado"
SPECS=""
for p in $PKGS; do
  v=$(version "$p")
  [ -n "$v" ] || { echo "gpu_wheels: $p is not in uv.lock" >&2; exit 1; }
  SPECS="$SPECS $p==$v"
done
python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
  --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
  --platform manylinux1_x86_64 -d "$DEST" $SPECS
# antlr4 (Hydra's parser runtime) is published as a source archive only: build its pure-Python wheel here
python3 -m pip wheel -q --no-deps -w "$DEST" "antlr4-python3-runtime==$(version antlr4-python3-runtime)"
ls -1 "$DEST"
