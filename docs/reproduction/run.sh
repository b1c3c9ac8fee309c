#!/usr/bin/env bash
# The reproduction study (docs/reproduction/PLAN.md): every table's grid on WikiText-2 with 3 pretraining seeds,
# two cells at a time on one thread each, then the report built from all their runs. Resumable: rerun it and
# finished cells are skipped, a killed one resumes from its checkpoint. `run.sh report` rebuilds the report alone.
# No reading comprehension (rc.tasks=[]): no SQuAD or RACE files are on these machines, and the synthetic ones
# speak the synthetic language, not WikiText's.
#   CORPUS=<folder of .raw/.txt> GLUE=<GLUE folder> ROOT=<outputs> bash docs/reproduction/run.sh
set -euo pipefail
here="$(cd "$(dirname "$0")/../.." && pwd)"
shared="$(cd "$here/.." && pwd)/shared/data"
CORPUS="${CORPUS:-$shared/corpus/wikitext-2-raw}"
GLUE="${GLUE:-$shared/glue}"
ROOT="${ROOT:-$here/outputs/reproduction}"
OUT="${OUT:-$here/docs/reproduction/report}"
export WANDB_MODE="${WANDB_MODE:-offline}"

failed=""
if [ "${1:-}" != "report" ]; then
    for experiment in table1_masking table2_input_format table3_batch_size table4_data_size glue_comparison; do
        echo "$(date -u +%H:%M:%S) $experiment"
        python "$here/run.py" -m "experiment=$experiment" scale=cpu_real seed=0,1,2 \
            data=text_files "data.sources.text_files.path=$CORPUS" data.sources.text_files.doc_split=wikitext \
            glue=tsv "glue.data_dir=$GLUE" "glue.tasks=[sst2,stsb]" "rc.tasks=[]" \
            hydra/launcher=joblib hydra.launcher.n_jobs=2 trainer.threads=1 \
            "paths.root=$ROOT" "hydra.sweep.dir=$ROOT/multirun/$experiment" || failed="$failed $experiment"
    done
    echo "$(date -u +%H:%M:%S) done${failed:+; grids with failed cells:$failed (rerun to retry them)}"
fi
python -m ablations.report --source "$ROOT/cells" --out "$OUT"
[ -z "$failed" ]
