#!/usr/bin/env bash
# The runs behind docs/RESULTS.md. Usage: scripts/replicate.sh LANE   (lanes run one after another; two lanes
# may run side by side, one per core). Every step resumes: rerunning a lane continues where it stopped.
# Each run: runs/NAME/ (checkpoints, not committed) and docs/runs/NAME/ (config.json, metrics.jsonl, test JSON).
set -euo pipefail
cd "$(dirname "$0")/.."
SRNN=${SRNN:-.venv/bin/srnn}
PYTHON=${PYTHON:-.venv/bin/python}
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}
mkdir -p runs  # a fresh clone has none: the logs go there

run() {  # run NAME DATAFILE IWAE_K [train options...]
  local name=$1 data=$2 iwae=$3; shift 3
  "$SRNN" train --data "$data" --run-dir "runs/$name" --resume "$@" > "runs/$name.log" 2>&1 || { echo "FAILED $name"; return 1; }
  record "$name" "$iwae" && echo "done $name"
}

record() {  # NAME IWAE_K: score runs/NAME on the test split (again whenever best.pt is newer than its scores), print
            # the scores beside those docs/runs/NAME recorded, and record the run there: config, metrics and scores
  local name=$1 iwae=$2 scores=runs/$1/test.json
  if [ ! -s "$scores" ] || [ "runs/$name/best.pt" -nt "$scores" ]; then
    "$SRNN" evaluate "runs/$name" --split test --iwae "$iwae" --json > "$scores.tmp" 2>/dev/null \
      && mv "$scores.tmp" "$scores" || { echo "FAILED scoring $name"; return 1; }
  fi
  mkdir -p "docs/runs/$name"
  "$PYTHON" scripts/results.py compare "docs/runs/$name/test.json" "$scores"
  cp "runs/$name/config.json" "runs/$name/metrics.jsonl" "$scores" "docs/runs/$name/"
}

run_on() {  # run_on NAME DATASET VARIANT [train options...]: run on the variant's data file (IWAE K = 100 on boulanger)
  local name=$1 ds=$2 variant=$3; shift 3
  if [ "$variant" = srnn ]; then run "$name" "data/$ds-srnn.h5" 0 "$@"; else run "$name" "data/$ds.h5" 100 "$@"; fi
}

evaluate_to() {  # OUT RUN_DIR [srnn evaluate options...]: its --json output, written to OUT by rename, unless OUT
                 # exists and is newer than the run's best.pt (a retrained run is always scored again)
  local out=$1
  shift
  [ -s "$out" ] && [ ! "$1/best.pt" -nt "$out" ] && return 0
  mkdir -p "$(dirname "$out")"
  "$SRNN" evaluate "$@" --json > "$out.tmp" && mv "$out.tmp" "$out"
}

evaluate_on_each_test_split() {  # NAME: a model trained on merged data, scored on each dataset's own test split
  local ds
  for ds in jsb nottingham muse piano; do
    evaluate_to "docs/runs/$1/test-$ds.json" "runs/$1" --data "data/$ds.h5" --split test
  done
}

score_test() {  # RUN_DIR OUT [srnn evaluate options...]: its test evaluation with those options, as evaluate_to
  local dir=$1 out=$2; shift 2
  [ -s "$out" ] && [ ! "$dir/best.pt" -nt "$out" ] && return 0
  evaluate_to "$out" "$dir" --split test "$@" && echo "done $out"
}

PAPER="--d 300 --a 300 --z 100 --epochs 50"
SMALL="--d 30 --a 30 --z 10 --epochs 20"
TUNED="--d 300 --a 300 --z 8 --lr 2e-3 --epochs 50 --elbo analytic"

case "${1:-}" in
  a)  # the paper's configuration on its own data (variant srnn); both ELBOs on JSB first
    run paper-jsb-srnn-trace data/jsb-srnn.h5 0 $PAPER --elbo trace
    run paper-jsb-srnn-analytic data/jsb-srnn.h5 0 $PAPER --elbo analytic
    run paper-piano-srnn data/piano-srnn.h5 0 $PAPER --elbo "${BEST_ELBO:-analytic}"
    run paper-nottingham-srnn data/nottingham-srnn.h5 0 $PAPER --elbo "${BEST_ELBO:-analytic}"
    run paper-muse-srnn data/muse-srnn.h5 0 $PAPER --elbo "${BEST_ELBO:-analytic}"
    ;;
  b)  # the poster's small SRNN on all four, then the Boulanger variant and augmentation
    for ds in jsb piano nottingham muse; do run small-$ds-srnn data/$ds-srnn.h5 0 $SMALL; done
    run paper-jsb-boulanger data/jsb.h5 100 $PAPER --elbo "${BEST_ELBO:-analytic}"
    for ds in jsb piano; do
      run small-$ds-boulanger data/$ds.h5 100 $SMALL
      run small-$ds-boulanger-augment data/$ds.h5 100 $SMALL --augment transpose:6
    done
    run paper-piano-boulanger data/piano.h5 100 $PAPER --elbo "${BEST_ELBO:-analytic}"
    ;;
  c)  # the paper's configuration on the other two Boulanger-variant datasets
    run paper-nottingham-boulanger data/nottingham.h5 100 $PAPER --elbo "${BEST_ELBO:-analytic}"
    run paper-muse-boulanger data/muse.h5 100 $PAPER --elbo "${BEST_ELBO:-analytic}"
    ;;
  d)  # the schedule question of RESULTS section 3, and the merged-data run at reduced length (10 epochs)
    run small-jsb-srnn-fixed data/jsb-srnn.h5 0 $SMALL --schedule fixed
    run merged-small data/merged.h5 0 --d 30 --a 30 --z 10 --epochs 10
    evaluate_on_each_test_split merged-small
    run small-piano-srnn-fixed data/piano-srnn.h5 0 $SMALL --schedule fixed
    ;;
  e)  # the poster's merged-data run at its full length (50 epochs)
    run merged-small-50 data/merged.h5 0 --d 30 --a 30 --z 10 --epochs 50
    evaluate_on_each_test_split merged-small-50
    ;;
  units)  # RESULTS section 5: active latent units on the test split of every finished paper-size, merged and grid run
    for dir in runs/paper-* runs/merged-small*; do
      [ -d "$dir" ] && [ -s "docs/runs/$(basename "$dir")/test.json" ] || continue
      score_test "$dir" "docs/runs/$(basename "$dir")/test-active-units.json" --active-units
    done
    for dir in runs/grid-*/*/; do
      dir=${dir%/}
      grid=$(basename "$(dirname "$dir")")
      [ -s "$dir/eval.json" ] && [ -d "docs/runs/$grid" ] || continue
      score_test "$dir" "docs/runs/$grid/units/$(basename "$dir").json" --active-units
    done
    ;;
  grid)  # the poster's architecture grid (RESULTS section 4) as one Optuna study; DATA=jsb|piano, EPOCHS=20 (fewer:
         # reduced scale). Start it twice (one per core, or on two machines with a shared --storage): the two
         # processes share the study's trials
    ds=${DATA:-jsb} epochs=${EPOCHS:-20}
    name=grid-$ds; [ "$epochs" = 20 ] || name=grid-$ds-${epochs}ep
    "$SRNN" sweep --data "data/$ds-srnn.h5" --grid "a=30,300 d=30,300 z=10,100 seq-len=50,100" --epochs "$epochs" \
      --no-prune --out "runs/$name" >> "runs/$name.log" 2>&1 || { echo "FAILED $name"; exit 1; }
    mkdir -p "docs/runs/$name" && cp "runs/$name/results.md" "runs/$name/results.csv" "docs/runs/$name/"
    echo "done $name"
    ;;
  tpe)  # RESULTS section 4: a TPE search with pruning on JSB (variant boulanger), 16 trials of 50 epochs; start it
        # twice to search with two processes
    name=tpe-jsb
    "$SRNN" sweep --data data/jsb.h5 --search "z=8..128:log lr=3e-4..3e-3:log batch-size=4,8,16 elbo=analytic" \
      --trials 16 --epochs 50 --out "runs/$name" >> "runs/$name.log" 2>&1 || { echo "FAILED $name"; exit 1; }
    mkdir -p "docs/runs/$name" && cp "runs/$name/results.md" "runs/$name/results.csv" "docs/runs/$name/"
    echo "done $name"
    ;;
  seeds)  # seeds 1 and 2 of the paper-size runs of lanes a-c (seed 0), cheapest dataset first; VARIANT=srnn|boulanger
    variant=${VARIANT:-boulanger}
    for ds in ${DATASETS:-jsb piano nottingham muse}; do
      for seed in 1 2; do
        run_on paper-$ds-$variant-seed$seed $ds $variant $PAPER --elbo analytic --seed $seed
      done
    done
    ;;
  tuned)  # RESULTS sections 1-2: the configuration section 4's search found on JSB (z = 8, lr = 2e-3), on DATASETS (jsb),
          # VARIANTS (boulanger srnn) and SEEDS (0 1 2)
    for ds in ${DATASETS:-jsb}; do
      for variant in ${VARIANTS:-boulanger srnn}; do
        for seed in ${SEEDS:-0 1 2}; do
          run_on tuned-$ds-$variant-seed$seed $ds $variant $TUNED --seed $seed
        done
      done
    done
    ;;
  probe)  # RESULTS sections 1-2: on JSB, is it the learning rate or z (the paper's z with the tuned learning rate), and
          # does the tuned configuration's train-valid gap close with weight decay, more updates, dropout or training on
          # the importance-weighted bound?
    run probe-jsb-srnn-z100-lr2e-3 data/jsb-srnn.h5 0 $PAPER --elbo analytic --lr 2e-3
    run probe-jsb-boulanger-wd0.1 data/jsb.h5 100 $TUNED --weight-decay 0.1
    run probe-jsb-boulanger-wd1 data/jsb.h5 100 $TUNED --weight-decay 1
    run probe-jsb-boulanger-updates900 data/jsb.h5 100 $TUNED --updates 900
    for p in 0.1 0.3 0.5; do run probe-jsb-boulanger-dropout$p data/jsb.h5 100 $TUNED --dropout $p; done
    run probe-jsb-boulanger-iwae4 data/jsb.h5 100 $TUNED --elbo iwae:4
    ;;
  x1)  # RESULTS section 6: every finished variant-srnn run of the paper's size scored, beside the model's definition
       # (u_1 = 0), as the reference code scores its test arrays (u_1 = the piece's frame before x_1, which the
       # npz keeps; data prepared by srnn prep --variant srnn holds it) and with u_1 = x_1
    for dir in runs/paper-*-srnn* runs/tuned-*-srnn* runs/probe-*-srnn*; do
      [ -d "$dir" ] && [ -s "docs/runs/$(basename "$dir")/test.json" ] || continue
      for kind in previous x1; do
        score_test "$dir" "docs/runs/$(basename "$dir")/test-first-input-$kind.json" --first-input $kind
      done
    done
    ;;
  arch)  # RESULTS section 2: with the recipe settled, does the network's shape close the rest of the JSB gap? Shorter
         # truncation (the grids' winner), smaller or larger recurrent states and MLPs (z = 8, lr = 2e-3, seed 0)
    run probe-jsb-boulanger-seq-len50 data/jsb.h5 100 $TUNED --seq-len 50
    run probe-jsb-boulanger-seq-len50-updates450 data/jsb.h5 100 $TUNED --seq-len 50 --updates 450  # as many updates as s = 100
    run probe-jsb-boulanger-d100 data/jsb.h5 100 $TUNED --d 100 --a 100
    run probe-jsb-boulanger-hidden100 data/jsb.h5 100 $TUNED --hidden 100
    run probe-jsb-boulanger-hidden1000 data/jsb.h5 100 $TUNED --hidden 1000
    run probe-jsb-boulanger-d600 data/jsb.h5 100 $TUNED --d 600 --a 600
    ;;
  notts)  # RESULTS section 1: on Nottingham (variant srnn) the validation ELBO is still rising when the learning rate
          # starts to fall (epoch 20 of 50); does more optimisation at the paper's z close its gap? One probe per call:
          # PROBE=lr2e-3 (twice the step), updates9200 (twice the updates, the schedule stretched to match) or
          # lr2e-3-dropout0.2 (twice the step overfits: does dropout turn the extra fit into held-out likelihood?)
    case "${PROBE:-lr2e-3}" in
      lr2e-3) run probe-nottingham-srnn-lr2e-3 data/nottingham-srnn.h5 0 $PAPER --elbo analytic --lr 2e-3 ;;
      updates9200) run probe-nottingham-srnn-updates9200 data/nottingham-srnn.h5 0 $PAPER --elbo analytic --updates 9200 \
                     --patience 7 ;;  # the recorded run was stopped by hand where patience 7 stops it (pass 60)
      lr2e-3-dropout0.2) run probe-nottingham-srnn-lr2e-3-dropout0.2 data/nottingham-srnn.h5 0 $PAPER --elbo analytic \
                           --lr 2e-3 --dropout 0.2 ;;
      *) echo "PROBE must be lr2e-3, updates9200 or lr2e-3-dropout0.2" >&2; exit 2 ;;
    esac
    ;;
  draws)  # RESULTS: a test ELBO is one draw of z per sequence, so it carries Monte Carlo noise of its own; ten draws
          # (evaluation seeds 1-10) of seed 1 of each headline configuration measure it
    for name in ${RUNS:-paper-jsb-srnn-seed1 tuned-jsb-srnn-seed1 paper-nottingham-srnn-seed1 paper-piano-srnn-seed1 \
                paper-muse-srnn-seed1 paper-jsb-boulanger-seed1 tuned-jsb-boulanger-seed1 \
                paper-nottingham-boulanger-seed1 paper-piano-boulanger-seed1 paper-muse-boulanger-seed1}; do
      [ -s "docs/runs/$name/test.json" ] || continue
      for seed in 1 2 3 4 5 6 7 8 9 10; do
        evaluate_to "docs/runs/$name/draws/seed$seed.json" "runs/$name" --split test --seed $seed
      done
      echo "done $name draws"
    done
    ;;
  nade)  # RESULTS section 8: the comparison models of Boulanger-Lewandowski et al. (2012) beside the SRNN, with the
         # paper's recipe: MODELS of rnn (--z 0), rnn-nade (--z 0 --emission nade), srnn-nade (--emission nade), on
         # DATASETS (jsb) of VARIANT (boulanger), SEEDS (0), with CONFIG (below), PRETRAIN, ANNEAL, DROPOUT and
         # PATIENCE. An RNN's likelihood is exact, so it gets no IWAE pass.
    for ds in ${DATASETS:-jsb}; do
      for model in ${MODELS:-rnn-nade srnn-nade rnn}; do
        for seed in ${SEEDS:-0}; do
          case $model in
            rnn) options=(--z 0) ;;
            rnn-nade) options=(--z 0 --emission nade) ;;
            srnn-nade) options=(--emission nade) ;;
            *) echo "MODELS: rnn, rnn-nade or srnn-nade, not $model" >&2; exit 2 ;;
          esac
          variant=${VARIANT:-boulanger}
          case ${CONFIG:-paper} in  # paper: the SRNN's recipe; tuned: JSB's (z = 8 for an SRNN, lr = 2e-3);
                                    # long: the recipe's schedule stretched over 2,000 updates at lr = 2e-3
            paper) recipe=($PAPER --elbo analytic) ;;
            tuned) recipe=($TUNED) ;;
            long) recipe=($PAPER --elbo analytic --updates 2000 --lr 2e-3) ;;
            *) echo "CONFIG: paper, tuned or long" >&2; exit 2 ;;
          esac
          name=${CONFIG:-paper}-$ds-$variant-$model-seed$seed
          # each setting given in the environment: its option, and its tag in the run's name. PRETRAIN: the NADE's
          # pretraining updates; ANNEAL: the KL warm-up's epochs (SRNN-NADE: 40, chosen on JSB validation by
          # `nadeprobe`); DROPOUT: on e(.) and the emission's hidden layer (MuseData's RNN-NADE overfits after
          # epoch 10); PATIENCE: stop after that many validations without a new best
          for setting in "PRETRAIN --nade-pretrain pretrain" "ANNEAL --kl-anneal-epochs warmup" \
                         "DROPOUT --dropout dropout" "PATIENCE --patience patience"; do
            read -r variable option tag <<< "$setting"
            value=${!variable:-}
            [ -n "$value" ] || continue
            options+=("$option" "$value"); name=$name-$tag$value
          done
          if [ "$variant" = srnn ]; then data=data/$ds-srnn.h5; else data=data/$ds.h5; fi
          k=100; [ "$model" = srnn-nade ] || k=0
          [ "$variant" = srnn ] && k=0
          run "$name" "$data" "$k" "${recipe[@]}" --seed "$seed" "${options[@]}"
          case $ds in jsb|piano) evaluate_to "docs/runs/$name/music.json" "runs/$name" --music ;; esac  # at T = 1
        done
      done
    done
    ;;
  nadeprobe)  # RESULTS section 8: the NADE models on JSB (boulanger), SEEDS (0), the paper recipe with dropout
              # against the overfitting, and SRNN-NADE with the KL warm-up over 40 of the 50 epochs, not 20 (to keep
              # the latent layer informative longer), also with free bits; seed 0's runs have no seed in their names
    for probe in ${PROBES:-rnn-nade-dropout0.3 srnn-nade-dropout0.3}; do
      for seed in ${SEEDS:-0}; do
        case $probe in
          rnn-nade-dropout0.3) options=(--z 0 --emission nade --dropout 0.3); k=0 ;;
          srnn-nade-dropout0.3) options=(--emission nade --dropout 0.3); k=100 ;;
          srnn-nade-warmup40) options=(--emission nade --kl-anneal-epochs 40); k=100 ;;
          srnn-nade-warmup40-freebits*)  # and free bits: LAMBDA nats per frame per unit free of charge
            options=(--emission nade --kl-anneal-epochs 40 --free-bits "${probe#srnn-nade-warmup40-freebits}"); k=100 ;;
          *) echo "PROBES: rnn-nade-dropout0.3, srnn-nade-dropout0.3, srnn-nade-warmup40 or" \
                  "srnn-nade-warmup40-freebitsLAMBDA, not $probe" >&2; exit 2 ;;
        esac
        name=probe-jsb-boulanger-$probe
        [ "$seed" = 0 ] || name=$name-seed$seed
        run "$name" data/jsb.h5 $k $PAPER --elbo analytic "${options[@]}" --seed "$seed"
        evaluate_to "docs/runs/$name/music.json" "runs/$name" --music
      done
    done
    ;;
  tsbn)  # RESULTS section 9: the one-layer TSBN of Gan et al. (2015), J = 100, on DATASETS (all four, variant
         # boulanger), trained by TraceGraph_ELBO with the NVIL baseline; its recipe (RECIPE) chosen on JSB's
         # validation ELBO among the probes of section 9. Test: ELBO and IWAE K = 100; music on JSB and Piano-midi.de.
    for ds in ${DATASETS:-jsb nottingham muse piano}; do
      name=tsbn-$ds-boulanger-seed${SEED:-0}
      run "$name" "data/$ds.h5" 100 --model tsbn --z 100 ${RECIPE:---seq-len 20 --lr 3e-3 --updates 3000} \
        --seed "${SEED:-0}"
      case $ds in jsb|piano) evaluate_to "docs/runs/$name/music.json" "runs/$name" --music ;; esac  # at T = 1
    done
    ;;
  smoke)  # a run of seconds on DATA (data/bach.h5) that shows a lane's machinery: train, score, compare, record
    run smoke "${DATA:-data/bach.h5}" 0 --d 6 --a 5 --z 3 --hidden 8 --epochs 1 --seq-len 20 \
      --batch-size 4
    ;;
  *) echo "usage: $0 a|b|c|d|e|units|grid|tpe|seeds|tuned|probe|arch|x1|notts|draws|nade|nadeprobe|tsbn|smoke" >&2; exit 2 ;;
esac
