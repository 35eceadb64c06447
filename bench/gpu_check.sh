#!/usr/bin/env bash
# The GPU path, proven in one call (issue 14; details and figures: bench/gpu_check.md).
#
#   bench/gpu_check.sh --prepare   # HERE, once, with network: .whl/ (lmdb + simplejpeg cp312
#                                  # wheels) and .gpu_photos/ (real photos), both gitignored
#   bench/gpu_check.sh             # ON THE DEVICE MACHINE, through the device tool:
#       run(command="bash bench/gpu_check.sh", carry=[".whl", ".gpu_photos"], timeout_s=450)
#   bench/gpu_check.sh --dry-run   # anywhere: the same steps on the CPU, tiny sizes, no CUDA,
#                                  # no wheels (tests/test_gpu_check.py runs it)
#
# Device run: installs the carried wheels (to /tmp/gpu_check_site) and augpipe from this tree
# (pip install --no-deps --no-build-isolation: the region-decode extension builds only where
# libjpeg's headers exist; the report names the decode path that ran), cuts a 10,000-image
# corpus from .gpu_photos with tools/make_photo_corpus.py and packs it there (16 cores: ~20 s;
# nothing big travels), then runs bench/gpu_check.py: loader scaling and CPU/CUDA equality,
# augpipe train vs synthetic ceiling vs torchvision, augpipe bench, cudnn.benchmark on/off.
# Reports: $OUT/gpu_check.json, $OUT/gpu_check.md, $OUT/gpu_check.log ($OUT: a temp dir when
# unset). GPU_CHECK_BUDGET (s, default 360) is the driver's own hard limit: steps that would
# not fit are skipped and said so; `timeout` stops it 40 s after that whatever happens.
# Extra arguments go to bench/gpu_check.py (e.g. --only loader,cudnn for a partial rerun).
set -uo pipefail
REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PY="${PYTHON:-python3}"
MODE=device
case "${1:-}" in
  --dry-run) MODE=dry; shift ;;
  --prepare) MODE=prepare; shift ;;
esac
if [[ -z "${OUT:-}" ]]; then OUT="$(mktemp -d -t gpu_check.XXXXXX)"; fi
mkdir -p "$OUT"

if [[ $MODE == prepare ]]; then
  set -e
  cd "$REPO"
  PHOTOS="${GPU_CHECK_PHOTOS:-/usr/share/backgrounds/mate/nature}"
  rm -rf .whl .gpu_photos && mkdir -p .whl .gpu_photos
  "$PY" -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 \
    --implementation cp --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 \
    --platform manylinux2014_x86_64 -d .whl lmdb simplejpeg
  cp "$PHOTOS"/*.jpg .gpu_photos/
  du -sh .whl .gpu_photos
  { git check-ignore -q .whl && git check-ignore -q .gpu_photos; } || { echo "add /.whl/ and /.gpu_photos/ to .gitignore"; exit 1; }
  echo 'device: run(command="bash bench/gpu_check.sh", carry=[".whl", ".gpu_photos"], timeout_s=450)'
  exit 0
fi

if [[ $MODE == dry ]]; then
  export OMP_NUM_THREADS="${OMP_NUM_THREADS:-1}"  # tiny CPU models: threads only contend
  exec "$PY" "$REPO/bench/gpu_check.py" --dry-run --out "$OUT" --work "$(mktemp -d -t gpu_check_work.XXXXXX)" "$@"
fi

BUDGET="${GPU_CHECK_BUDGET:-360}"
WORK="${GPU_CHECK_WORK:-/tmp/gpu_check_work}"
mkdir -p "$WORK"
LOG="$OUT/gpu_check.log"
{
  echo "== gpu_check $(date -u +%FT%TZ) on $(hostname), $(nproc) cores"
  nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || true
  if ! "$PY" -c "import lmdb, simplejpeg" 2>/dev/null; then
    if ls "$REPO"/.whl/*.whl >/dev/null 2>&1; then
      "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
        --target /tmp/gpu_check_site "$REPO"/.whl/*.whl
      export PYTHONPATH="/tmp/gpu_check_site${PYTHONPATH:+:$PYTHONPATH}"
    else
      echo "lmdb/simplejpeg missing and no .whl/ carried: run bench/gpu_check.sh --prepare here first"
    fi
  fi
  echo "== pip install --no-deps --no-build-isolation (augpipe from $REPO)"
  "$PY" -m pip install -q --no-deps --no-build-isolation --no-index --no-cache-dir "$REPO" 2>&1 | tail -5
  cd "$WORK"  # not the checkout: imports must resolve to the installed augpipe
  if ! "$PY" -c "import augpipe" 2>/dev/null; then
    echo "pip install failed: using the working tree through PYTHONPATH instead"
    export PYTHONPATH="$REPO${PYTHONPATH:+:$PYTHONPATH}"
  fi
  "$PY" -c "import augpipe, augpipe.decode as d; print('augpipe from', augpipe.__file__, '| region decode:', d.REGION_DECODE)"
  SRC=()
  if [[ -d "$REPO/.gpu_photos" ]]; then SRC=(--photos-src "$REPO/.gpu_photos"); fi
  PYTHONUNBUFFERED=1 timeout -k 10 "$((BUDGET + 40))" "$PY" "$REPO/bench/gpu_check.py" \
    --out "$OUT" --work "$WORK" --budget "$BUDGET" --repo "$REPO" ${SRC[@]+"${SRC[@]}"} "$@"
  rc=$?
  echo "== exit $rc"
  exit $rc
} 2>&1 | tee "$LOG"
