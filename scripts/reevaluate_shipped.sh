#!/usr/bin/env bash
# Re-evaluate every shipped model on its rebuilt held-out test pieces (test synth, tempo 1.0):
# snippet retrieval both ways (2,000 pairs) and piece identification both ways (plain votes k=25,
# and audio -> score with votes / size, k=5), dumps under $EXP_ROOT/<model>_pretrained/.
# FORCE=1 rebuilds the pieces (after a change of the builder). Then `python scripts/ship_model.py --reevaluated $EXP_ROOT` writes the figures into each meta.yaml
# and the model card. Usage: bash scripts/reevaluate_shipped.sh [DATA_ROOT] [EXP_ROOT]
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-.venv/bin/python}
DATA_ROOT=${1:-data/msmd_pretrained_test}
EXP_ROOT=${2:-experiments/reevaluated}
SOURCES=$($PY -c "from audio_sheet_retrieval import pretrained as p; print(' '.join(p.pretrained_meta(p.DEFAULT_MODEL)['test_sources']))")
$PY build_dataset.py --root "$DATA_ROOT" --jobs 2 --synths MuseScoreGrand --tempi 1.0 --no_audio ${FORCE:+--force} --pieces $SOURCES
SPLIT=$($PY -c "
from audio_sheet_retrieval import pretrained as p
from audio_sheet_retrieval.data.splits import write_split
m = p.pretrained_meta(p.DEFAULT_MODEL)
print(write_split({'train': [], 'valid': [], 'test': m['test_pieces']}, '$DATA_ROOT/splits/pretrained_test_split.yaml'))")
for name in $($PY -c "from audio_sheet_retrieval import pretrained as p; print(' '.join(p.available()))"); do
  common=(--model "models/$name.py" --train_split "$SPLIT" --data_root "$DATA_ROOT" --exp_root "$EXP_ROOT" --pretrained)
  for direction in "" --V2_to_V1; do
    $PY run_eval.py "${common[@]}" --dump_results --n_test 2000 $direction
  done
  $PY audio_sheet_server.py "${common[@]}" --full_eval --init_sheet_db --dump_results
  $PY audio_sheet_server.py "${common[@]}" --full_eval --dump_results --vote_norm size --k 5
  $PY sheet_audio_server.py "${common[@]}" --full_eval --init_audio_db --dump_results
done
