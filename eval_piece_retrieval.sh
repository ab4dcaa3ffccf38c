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

usage() {
    echo "usage: $0 DEVICE MODEL SPLIT   e.g. $0 cuda0 models/mutopia_ccal_cont_rsz_dense.py" \
         "data/msmd/splits/all_split.yaml" >&2
    exit 2
}
[ $# -ge 3 ] || usage
device=$1 model=$2 split=$3
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
if [ -z "${PYTHON:-}" ]; then
    if [ -x "$here/.venv/bin/python" ]; then PYTHON="$here/.venv/bin/python"; else PYTHON=python; fi
fi
read -r -a configs <<< "${CONFIGS:-no_aug full_aug}"
read -r -a extra <<< "${EXTRA_ARGS:-}"
read -r -a eval_extra <<< "${EVAL_ARGS:-}"
config_dir="${CONFIG_DIR:-$here/exp_configs}"

for cfg in "${configs[@]}"; do
    common=(--model "$model" --data mutopia --train_split "$split" --config "$config_dir/$cfg.yaml"
            --device "$device" --estimate_UV --full_eval --dump_results
            ${extra[@]+"${extra[@]}"} ${eval_extra[@]+"${eval_extra[@]}"})
    echo "=== score identification from audio (A2S): $model with $cfg"
    "$PYTHON" "$here/audio_sheet_server.py" "${common[@]}" --init_sheet_db
    echo "=== performance identification from a score (S2A): $model with $cfg"
    "$PYTHON" "$here/sheet_audio_server.py" "${common[@]}" --init_audio_db
done
