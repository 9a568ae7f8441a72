#!/usr/bin/env bash
# Run on a lent GPU machine (the `device` tool), in one call: the adapters, `validate` on every
# adapter, and `bench` on the GPU, each figure the median of 5 repeats, with the driver recorded.
#
# Here, once:
#   echo /.gl/ >> .git/info/exclude; echo /.bin/ >> .git/info/exclude
#   mkdir -p .gl /tmp/amd64/partial; o='-oAPT::Architecture=amd64 -oAPT::Architectures=amd64 -oDir::State::Lists=/tmp/amd64'
#   apt-get $o update; (cd .gl && apt-get $o download libvulkan1 libegl1 libglvnd0 libopengl0 libgl1 libglx0 libgles2)
#   cargo build --release --locked && mkdir -p .bin && cp target/release/steplens .bin/ && strip .bin/steplens
# Then: device run, carry [".gl", ".bin"], command "bash scripts/device-bench.sh", timeout_s 540.
# Results come back in $OUT: bench.json, validate.json, and log.txt with everything printed.
set -uo pipefail
for f in .gl/*.deb; do dpkg -x "$f" /; done
ldconfig
if [ -f /usr/local/nvidia/share/vulkan/icd.d/nvidia_icd.json ]; then
  export VK_DRIVER_FILES=/usr/local/nvidia/share/vulkan/icd.d/nvidia_icd.json
  export __EGL_VENDOR_LIBRARY_FILENAMES=/usr/local/nvidia/share/glvnd/egl_vendor.d/10_nvidia.json
fi
export XDG_RUNTIME_DIR=/tmp
out=${OUT:-/tmp/out}
mkdir -p "$out"
bin=./.bin/steplens
{
  date -u
  nvidia-smi --query-gpu=name,driver_version --format=csv 2>&1 || true
  $bin adapters
  timeout 120 $bin validate --quiet --json "$out/validate.json"
  timeout 360 $bin bench --quiet --backend vulkan --json "$out/bench.json"
  timeout 60 $bin bench --quiet --backend vulkan --kernels unfused --no-analysis --sweep-runs 64 --json "$out/bench-unfused.json"
} 2>&1 | tee "$out/log.txt"
