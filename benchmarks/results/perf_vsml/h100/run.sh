#!/bin/bash
# device script, tree of e666407 on an H100 (correctness, the benchmark) and the
# rollout side by side with the tree of 1f57d9b (.devold = git archive 1f57d9b), whose
# env and rollout loop spent more launches per step.
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl || exit 1
export PYTHONPATH=/tmp/site PYTHONUNBUFFERED=1 VSML_GYM_DATA=$PWD/.devdata
nvidia-smi --query-gpu=name,clocks.max.sm --format=csv > $OUT/gpu.txt; python3 -c "import torch, triton; print(torch.__version__, triton.__version__)" >> $OUT/gpu.txt
P="benchmarks/perf_vsml.py --device cuda --steps 500 --repeats 2"
echo "== gpu_check"; timeout 150 python3 benchmarks/gpu_check.py > $OUT/gpu_check.json; echo "rc=$?"
echo "== perf"; timeout 220 python3 $P --populations 256 1024 2048 --implementations baseline vsml rollout > $OUT/perf_vsml_cuda.json
for round in 1 2; do
  echo "== rollout, previous tree ($round)"; (cd .devold && timeout 60 python3 $P --populations 256 1024 --implementations rollout) > $OUT/rollout_previous_$round.json
  echo "== rollout, this tree ($round)"; timeout 60 python3 $P --populations 256 1024 --implementations rollout > $OUT/rollout_new_$round.json
done
echo done
