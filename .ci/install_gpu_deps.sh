#!/usr/bin/env bash
# Install the system side of graphc's GPU test dependencies (no GPU needed):
#   - PoCL (OpenCL on the CPU) + the ICD loader, so pyopencl can run kernels;
#   - ocl-icd-opencl-dev (OpenCL headers/libOpenCL.so, for building pyopencl
#     from source if no wheel fits), clinfo (diagnostics).
# Run before: pip install .[test,opencl,cuda-compile]
# (pip side: pyopencl, nvidia-cuda-nvrtc-cu12 -> NVRTC for sm_90 cubins).
# Idempotent and non-interactive; apt steps are skipped when not root or when
# apt-get is absent.  Note: the PoCL *wheel* on PyPI does not work on every CPU;
# Debian's pocl-opencl-icd does.
set -u
export DEBIAN_FRONTEND=noninteractive

PKGS="pocl-opencl-icd ocl-icd-libopencl1 ocl-icd-opencl-dev clinfo"

have_all() {
    for p in $PKGS; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || return 1
    done
    return 0
}

if ! command -v apt-get >/dev/null 2>&1; then
    echo "install_gpu_deps: apt-get not found; skipping system packages ($PKGS)" >&2
elif have_all; then
    echo "install_gpu_deps: $PKGS already installed"
else
    SUDO=""
    if [ "$(id -u)" != "0" ]; then
        if command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
            SUDO="sudo -n"
        else
            SUDO=""
            echo "install_gpu_deps: not root and no passwordless sudo; skipping apt-get install $PKGS" >&2
            PKGS=""
        fi
    fi
    if [ -n "$PKGS" ]; then
        $SUDO apt-get update -qq || echo "install_gpu_deps: apt-get update failed (continuing)" >&2
        $SUDO apt-get install -y -qq --no-install-recommends $PKGS \
            || echo "install_gpu_deps: apt-get install failed; OpenCL tests will be skipped" >&2
    fi
fi

# Report what an OpenCL client will see (never fails the script).
if command -v clinfo >/dev/null 2>&1; then
    clinfo -l 2>/dev/null || true
fi
exit 0
