# Sourced by the GPU scripts (tools/gpu_report.sh, tools/kd_bench_gpu.sh) from the repository root: spconv from
# .devwheels/spconv-cu126.tar.xz when present (unpacked once into .devsite/), else from the environment; the
# repository on PYTHONPATH (the package need not be installed); unbuffered Python output.
if [ -f .devwheels/spconv-cu126.tar.xz ] && [ ! -d .devsite/spconv ]; then
    mkdir -p .devsite
    tar -xJf .devwheels/spconv-cu126.tar.xz -C .devsite
fi
export PYTHONPATH="$PWD/.devsite:$PWD${PYTHONPATH:+:$PYTHONPATH}"
export PYTHONUNBUFFERED=1
