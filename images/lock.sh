#!/usr/bin/env bash
# Regenerate the pinned locks of the stage images: images/<stage>/requirements.txt.
#   images/lock.sh [STAGE...]      STAGE: data quantize translate train merge evaluate build-tools
#                                  (no argument: all of them)
# Needs uv (`pip install uv==0.13.9`; UV=/path/to/uv to use another). Check the result with
# `python scripts/check_images.py` (make check-images).
#
# Each lock is `hala[<stage>]` from pyproject.toml resolved by uv against PyPI for the images'
# platform: CPython 3.11 on x86_64 glibc 2.35 (Ubuntu 22.04 under the CUDA bases, Debian 12 under
# python slim). It pins every package exactly, with hashes: the Containerfiles install it with
# `pip install --require-hashes --no-deps`. The stages that run on the tested local stack are
# constrained to requirements/local.txt (+ its torch) so an image runs the versions the test suite
# ran; the vLLM stages cannot be (vLLM pins its own torch and compressed-tensors) and take their
# exact choices from images/<stage>/constraints.txt.
set -euo pipefail
cd "$(dirname "$0")/.."
UV=${UV:-uv}
STAGES=(data quantize translate train merge evaluate build-tools)
[ $# -gt 0 ] && STAGES=("$@")
COMMON=(--no-config --index-url https://pypi.org/simple --python-version 3.11
  --python-platform x86_64-manylinux_2_35 --generate-hashes --emit-index-url --quiet)
for stage in "${STAGES[@]}"; do
  if [ "$stage" = build-tools ]; then
    "$UV" pip compile images/build-tools.in "${COMMON[@]}" \
      --custom-compile-command "images/lock.sh build-tools" --output-file images/build-tools.txt
    echo "images/build-tools.txt: $(grep -c '==' images/build-tools.txt) pins"
    continue
  fi
  constraints=()
  [ -f "images/$stage/constraints.txt" ] && constraints+=(--constraint "images/$stage/constraints.txt")
  case "$stage" in
    translate | evaluate) ;;
    *) constraints+=(--constraint requirements/local.txt --constraint images/tested-torch.txt) ;;
  esac
  "$UV" pip compile pyproject.toml --extra "$stage" "${constraints[@]}" "${COMMON[@]}" --no-strip-extras \
    --custom-compile-command "images/lock.sh $stage" --output-file "images/$stage/requirements.txt"
  echo "images/$stage/requirements.txt: $(grep -c '==' "images/$stage/requirements.txt") pins"
done
