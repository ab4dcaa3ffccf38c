#!/usr/bin/env bash
# Train one model with each augmentation config, then refine its CCA layer (TISMIR 2018).
#
# Usage: ./train_models.sh DEVICE MODEL SPLIT
#   e.g. ./train_models.sh cuda0 models/mutopia_ccal_cont_rsz_dense.py data/msmd/splits/all_split.yaml
#
# For each config: run_train.py, then refine_cca.py --n_train $N_TRAIN.
# Environment (all optional):
#   CONFIGS     config stems            (default: "no_aug audio_aug sheet_aug full_aug")
#   CONFIG_DIR  folder of the configs   (default: exp_configs beside this script)
#   N_TRAIN     pairs of the CCA refit  (default: 25000)
#   EXTRA_ARGS  flags for every command (e.g. "--data_root D --exp_root E")
#   TRAIN_ARGS  flags for run_train.py  (e.g. "--max_epochs 1 --epoch_samples 200")
#   PYTHON      interpreter             (default: .venv/bin/python beside this script, else python)
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
default_configs="no_aug audio_aug sheet_aug full_aug"
source "$here/scripts/asr_common.sh" "$@"
read -r -a train_extra <<< "${TRAIN_ARGS:-}"

for cfg in "${configs[@]}"; do
    common=(--model "$model" --data mutopia --train_split "$split" --config "$config_dir/$cfg.yaml"
            --device "$device" ${extra[@]+"${extra[@]}"})
    echo "=== train $model with $cfg"
    "$PYTHON" "$here/run_train.py" "${common[@]}" ${train_extra[@]+"${train_extra[@]}"}
    echo "=== refine the CCA layer of $model with $cfg"
    "$PYTHON" "$here/refine_cca.py" "${common[@]}" --n_train "${N_TRAIN:-25000}"
done
