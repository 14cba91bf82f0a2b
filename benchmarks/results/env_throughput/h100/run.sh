#!/bin/bash
# device script, tree of 99b8dec (rows by index_select, in-place standardisation) on an
# H100: correctness, the ES-step evaluation, and the env side by side with .devold (git archive 1f57d9b).
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl || exit 1
export PYTHONPATH=/tmp/site PYTHONUNBUFFERED=1 VSML_GYM_DATA=$PWD/.devdata
nvidia-smi --query-gpu=name,clocks.max.sm --format=csv > $OUT/gpu.txt
echo "== gpu_check"; timeout 130 python3 benchmarks/gpu_check.py > $OUT/gpu_check.json; echo "rc=$?"
echo "== rollout"; timeout 70 python3 benchmarks/perf_vsml.py --device cuda --steps 500 --populations 256 1024 2048 \
    --implementations rollout > $OUT/rollout_cuda.json
# (the env lines first ran without PYTHONPATH=$PWD, failed to import vsml_gym, and were rerun
# at once on the same warm machine as follows; env_throughput.py, unlike perf_vsml.py, imports the
# installed package)
export PYTHONPATH=$PWD:/tmp/site
E="benchmarks/env_throughput.py --device cuda --num-envs 1 64 1024 --min-seconds 1"
for r in 1 2; do
  timeout 30 python3 $E > $OUT/env_throughput_cuda_99b8dec_$r.json
  (cd .devold && PYTHONPATH=$PWD:/tmp/site timeout 30 python3 $E) > $OUT/env_throughput_cuda_1f57d9b_$r.json
done
echo done
