#!/bin/bash
# device run: new fused layer kernel vs the previous tick kernel, H100
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl || exit 1
export PYTHONPATH=/tmp/site PYTHONUNBUFFERED=1 VSML_GYM_DATA=$PWD/.devdata
nvidia-smi --query-gpu=name,clocks.max.sm --format=csv > $OUT/gpu.txt; python3 -c "import torch, triton; print(torch.__version__, triton.__version__)" >> $OUT/gpu.txt
P="benchmarks/perf_vsml.py --device cuda --steps 500 --repeats 2"
echo "== ES step, new"; timeout 120 python3 $P --populations 2048 --implementations rollout > $OUT/es_step_new.json
echo "== ES step, previous"; (cd .devold && timeout 120 python3 $P --populations 2048 --implementations vsml rollout > $OUT/es_step_previous.json)
echo "== gpu_check"; timeout 150 python3 benchmarks/gpu_check.py > $OUT/gpu_check.json; echo "rc=$?"
echo "== sweep"; timeout 90 python3 benchmarks/triton_layer_sweep.py --population 2048 > $OUT/layer_sweep.json
echo "== tf32x3"; VSML_GYM_FUSED_PRECISION=tf32x3 timeout 60 python3 $P --populations 2048 --implementations rollout > $OUT/es_step_tf32x3.json
echo "== perf"; timeout 200 python3 $P --populations 256 1024 2048 --implementations baseline vsml rollout > $OUT/perf_vsml_cuda.json
echo done
