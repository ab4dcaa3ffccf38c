#!/usr/bin/env bash
# Snippet retrieval of one model's refined (est_UV) parameters, both directions (TISMIR 2018).
#
# Usage: ./eval_models.sh DEVICE MODEL SPLIT
#   e.g. ./eval_models.sh cuda0 models/mutopia_ccal_cont_rsz_dense.py data/msmd/splits/all_split.yaml
#
# For each config: run_eval.py --estimate_UV --dump_results --n_test $N_TEST, sheet -> audio
# (S2A) and audio -> sheet (A2S, --V2_to_V1).
# Environment (all optional):
#   CONFIGS     config stems            (default: "no_aug audio_aug sheet_aug full_aug")
#   CONFIG_DIR  folder of the configs   (default: exp_configs beside this script)
#   N_TEST      evenly spaced test pairs (default: 2000)
#   EXTRA_ARGS  flags for every command (e.g. "--data_root D --exp_root E")
#   EVAL_ARGS   flags for run_eval.py   (e.g. "--test_synth ElectricPiano --test_tempo 1.1")
#   PYTHON      interpreter             (default: .venv/bin/python beside this script, else python)
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
default_configs="no_aug audio_aug sheet_aug full_aug"
source "$here/scripts/asr_common.sh" "$@"
read -r -a eval_extra <<< "${EVAL_ARGS:-}"

for cfg in "${configs[@]}"; do
    common=(--model "$model" --data mutopia --train_split "$split" --config "$config_dir/$cfg.yaml"
            --device "$device" ${extra[@]+"${extra[@]}"} ${eval_extra[@]+"${eval_extra[@]}"})
    for direction in "" --V2_to_V1; do
        echo "=== evaluate $model with $cfg ${direction:-(S2A)}"
        "$PYTHON" "$here/run_eval.py" "${common[@]}" --estimate_UV --dump_results \
            --n_test "${N_TEST:-2000}" ${direction:+"$direction"}
    done
done
