#!/usr/bin/env bash
# Piece identification with one model's refined (est_UV) parameters, both directions (TISMIR 2018).
#
# Usage: ./eval_piece_retrieval.sh DEVICE MODEL SPLIT
#   e.g. ./eval_piece_retrieval.sh cuda0 models/mutopia_ccal_cont_rsz_dense.py data/msmd/splits/all_split.yaml
#
# For each config: audio_sheet_server.py (A2S) and sheet_audio_server.py (S2A) with
# --full_eval --init_*_db --estimate_UV --dump_results.
# Environment (all optional):
#   CONFIGS     config stems            (default: "no_aug full_aug")
#   CONFIG_DIR  folder of the configs   (default: exp_configs beside this script)
#   EXTRA_ARGS  flags for every command (e.g. "--data_root D --exp_root E")
#   EVAL_ARGS   flags for the servers   (e.g. "--n_queries 100 --k 25 --test_synth ElectricPiano")
#   PYTHON      interpreter             (default: .venv/bin/python beside this script, else python)
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
default_configs="no_aug full_aug"
source "$here/scripts/asr_common.sh" "$@"
read -r -a eval_extra <<< "${EVAL_ARGS:-}"

for cfg in "${configs[@]}"; do
    common=(--model "$model" --data mutopia --train_split "$split" --config "$config_dir/$cfg.yaml"
            --device "$device" --estimate_UV --full_eval --dump_results
            ${extra[@]+"${extra[@]}"} ${eval_extra[@]+"${eval_extra[@]}"})
    echo "=== score identification from audio (A2S): $model with $cfg"
    "$PYTHON" "$here/audio_sheet_server.py" "${common[@]}" --init_sheet_db
    echo "=== performance identification from a score (S2A): $model with $cfg"
    "$PYTHON" "$here/sheet_audio_server.py" "${common[@]}" --init_audio_db
done
