# Sourced by the GPU scripts (tools/gpu_report.sh, tools/kd_bench_gpu.sh) from the repository root: spconv from
# .devwheels/spconv-cu126.tar.xz when present (unpacked once into .devsite/), else from the environment; the
# repository on PYTHONPATH (the package need not be installed); unbuffered Python output.
# A device call carries at most 64 MiB with the working tree (about 24 MB tracked): ../shared/tools/device-bundle.sh's
# 44 MB archive no longer fits beside it; repack it once at xz -9e (40 MB, about 2 minutes):
#   rm -rf /tmp/sp && mkdir /tmp/sp && tar -xJf .devwheels/spconv-cu126.tar.xz -C /tmp/sp &&
#   tar -C /tmp/sp -cf - . | xz -9e -T2 > /tmp/sp.tar.xz && mv /tmp/sp.tar.xz .devwheels/spconv-cu126.tar.xz
if [ -f .devwheels/spconv-cu126.tar.xz ] && [ ! -d .devsite/spconv ]; then
    mkdir -p .devsite
    tar -xJf .devwheels/spconv-cu126.tar.xz -C .devsite
fi
export PYTHONPATH="$PWD/.devsite:$PWD${PYTHONPATH:+:$PYTHONPATH}"
export PYTHONUNBUFFERED=1
