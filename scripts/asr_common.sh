# Shared start of train_models.sh, eval_models.sh and eval_piece_retrieval.sh; sourced, not run:
#
#   here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
#   default_configs="no_aug full_aug"
#   source "$here/scripts/asr_common.sh" "$@"
#
# Takes: the calling script's arguments DEVICE MODEL SPLIT, $here (the repository root, the
# calling script's folder, so the scripts work from any working directory) and
# $default_configs (the config stems used when CONFIGS is unset).
# Sets: device, model, split; PYTHON (default: .venv/bin/python under $here, else python);
# the arrays configs (from CONFIGS) and extra (from EXTRA_ARGS); config_dir (CONFIG_DIR,
# default $here/exp_configs). Without three arguments: the usage line on stderr, exit status 2.
# The caller has already run `set -euo pipefail`.

usage() {
    echo "usage: $0 DEVICE MODEL SPLIT   e.g. $0 cuda0 models/mutopia_ccal_cont_rsz_dense.py" \
         "data/msmd/splits/all_split.yaml" >&2
    exit 2
}
[ $# -ge 3 ] || usage
device=$1 model=$2 split=$3
if [ -z "${PYTHON:-}" ]; then
    if [ -x "$here/.venv/bin/python" ]; then PYTHON="$here/.venv/bin/python"; else PYTHON=python; fi
fi
read -r -a configs <<< "${CONFIGS:-$default_configs}"
read -r -a extra <<< "${EXTRA_ARGS:-}"
config_dir="${CONFIG_DIR:-$here/exp_configs}"
