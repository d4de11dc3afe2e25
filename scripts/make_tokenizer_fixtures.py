#!/usr/bin/env python3
"""Token ids of tricky texts as the reference tokenizers give them, for the parity tests in
tests/integration/tokenizer.rs:

* open_clip's own ``SimpleTokenizer`` (open_clip_torch 3.3.0, the tokenizer of every
  MobileCLIP folder): ``ftfy.fix_text``, HTML unescaped twice, whitespace collapsed, lower case,
  its own special tokens ``<start_of_text>`` / ``<end_of_text>``; CLIP's ``<|startoftext|>`` typed
  in a text is ordinary text there. Rows of 77 ids, padded with 0, as its ``__call__`` returns.
* transformers' ``CLIPTokenizer`` on the Hugging Face CLIP folder
  (../shared/data/clip-vit-base-patch32, or --clip-dir): ``truncation=True, max_length=77``,
  unpadded; there ``<|startoftext|>`` typed in a text is the special token.

Run once (``python3 scripts/make_tokenizer_fixtures.py``); the output,
``tests/fixtures/reference/tokenizer_parity.json``, is committed. Needs only what
scripts/requirements-model-fixtures.txt pins for these two tokenizers, without torch:

    pip install --no-deps open_clip_torch==3.3.0
    pip install ftfy==6.3.1 regex==2026.5.9 numpy==2.4.6 transformers==5.24.0 tokenizers==0.23.3

open_clip's package imports torch at its top level, and ``open_clip/tokenizer.py`` imports it
for its tensors. So the module file is loaded on its own, and where torch is not installed a
stand-in module named ``torch`` is registered first that gives it what ``SimpleTokenizer``
touches (``zeros``, ``tensor``, ``long`` and the tensor type names), on numpy: the ids are
computed by open_clip's code, unchanged, and only their container differs.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import random
import sys
import types
from pathlib import Path

import numpy as np

REPO_ROOT = Path(__file__).resolve().parent.parent
OUT = REPO_ROOT / "tests" / "fixtures" / "reference" / "tokenizer_parity.json"
DEFAULT_CLIP_DIR = REPO_ROOT.parent / "shared" / "data" / "clip-vit-base-patch32"
CONTEXT_LENGTH = 77

TEXTS = [
    # Special tokens typed as text: CLIP's, open_clip's, in other cases, after punctuation.
    "<|startoftext|>special tokens typed as text<|endoftext|> after",
    "<|endoftext|>",
    "<start_of_text>open_clip's own markers<end_of_text> typed",
    "<START_OF_TEXT> upper-case markers <End_Of_Text>",
    "!<start_of_text> after punctuation, <<end_of_text>> and x<end_of_text>y",
    "<|startoftext|><start_of_text><|endoftext|><end_of_text>",
    # HTML entities, once and twice escaped (open_clip unescapes twice).
    "Ben &amp; Jerry&#39;s &lt;b&gt;bold&lt;/b&gt; caf&eacute; &nbsp;x &copy; &#x1F34B;",
    "&amp;lt;start_of_text&amp;gt; escaped markers &amp;amp;amp; &amp;quot;",
    # Odd whitespace and control characters.
    "tab\there\nnewline\r\nCRLF\u00a0nbsp\u2003em\u3000ideographic\u2028line  end ",
    "vertical\x0btab form\x0cfeed\x1cfile\x1dgroup\x1erecord\x1funit",
    "zero\u200bwidth joiner\u200dand bom\ufeffinside",
    "  \t\n ",
    "",
    # Emoji, flags, sequences, other scripts, combining marks.
    "🍋🍓 lemon 👩‍👩‍👧 family 🇸🇪 flag ❤️ heart 1️⃣ key",
    "Crème fraîche – Ärtsoppa, 日本語 🍋 naïve café; cafe\u0301 composed",
    "Ελληνικά ΣΊΣΥΦΟΣ русский ТЕКСТ العربية हिन्दी ﷺ",
    # What ftfy mends: curly quotes, ligatures, full-width forms.
    "Ben & Jerry’s “Chunky Monkey” ‘light’ „low” ‹a› «b»",
    "ﬁne ﬂour ﬀ ｆｕｌｌｗｉｄｔｈ ＡＢＣ１２３！ ｶﾀｶﾅ",
    # Numbers, contractions, punctuation runs.
    "7up 330ml 2x 1.5L 2024 -- it's we'll you're I'M DON'T ... !!! ??? (#1)",
]


def long_texts() -> list[str]:
    """Texts past the context length: words, and markers only past the cut."""
    rnd = random.Random(25)
    words = "milk oat juice apple 1.5L 330ml it's (new) café 🍋 <|endoftext|> &amp;".split()
    return [
        " ".join(rnd.choice(words) for _ in range(120)),
        "milk " * 74 + "<end_of_text> tail",
        "milk " * 80 + "<start_of_text>",
    ]


def torch_stand_in() -> types.ModuleType:
    """What open_clip/tokenizer.py needs of torch, on numpy (see the module doc)."""
    torch = types.ModuleType("torch")
    torch.long = np.int64
    torch.zeros = lambda *shape, dtype=None: np.zeros(shape, dtype=dtype)
    torch.tensor = lambda data, dtype=None: np.asarray(data, dtype=dtype)
    torch.Tensor = torch.LongTensor = np.ndarray
    return torch


def open_clip_tokenizer_module() -> types.ModuleType:
    """open_clip/tokenizer.py of the installed open_clip_torch, loaded on its own."""
    spec = importlib.util.find_spec("open_clip")
    if spec is None or not spec.submodule_search_locations:
        sys.exit("open_clip_torch is not installed (pip install --no-deps open_clip_torch==3.3.0)")
    path = Path(list(spec.submodule_search_locations)[0]) / "tokenizer.py"
    try:
        import torch  # noqa: F401
    except ImportError:
        sys.modules["torch"] = torch_stand_in()
    module_spec = importlib.util.spec_from_file_location("open_clip_tokenizer", path)
    module = importlib.util.module_from_spec(module_spec)
    module_spec.loader.exec_module(module)
    return module


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clip-dir", type=Path, default=DEFAULT_CLIP_DIR)
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args()

    import ftfy
    import tokenizers
    import transformers
    from importlib.metadata import version

    texts = TEXTS + long_texts()
    oc = open_clip_tokenizer_module()
    simple = oc.SimpleTokenizer(context_length=CONTEXT_LENGTH)
    rows = simple(texts).tolist()
    assert all(len(r) == CONTEXT_LENGTH for r in rows)

    hf = transformers.CLIPTokenizer.from_pretrained(str(args.clip_dir))
    hf_ids = [list(hf(t, truncation=True, max_length=CONTEXT_LENGTH)["input_ids"]) for t in texts]
    raw = tokenizers.Tokenizer.from_file(str(args.clip_dir / "tokenizer.json"))
    raw.enable_truncation(CONTEXT_LENGTH)
    for t, ids in zip(texts, hf_ids):
        assert raw.encode(t).ids == ids, ("tokenizers.Tokenizer differs from transformers", t)

    out = {
        "about": "made by scripts/make_tokenizer_fixtures.py",
        "open_clip": {
            "versions": {"open_clip_torch": version("open_clip_torch"), "ftfy": ftfy.__version__},
            "context_length": CONTEXT_LENGTH,
            "texts": [{"text": t, "ids": r} for t, r in zip(texts, rows)],
        },
        "transformers": {
            "versions": {"transformers": transformers.__version__, "tokenizers": tokenizers.__version__},
            "folder": "clip-vit-base-patch32",
            "texts": [{"text": t, "ids": ids} for t, ids in zip(texts, hf_ids)],
        },
    }
    args.out.write_text(json.dumps(out, ensure_ascii=False, indent=1) + "\n", encoding="utf-8")
    differ = sum(r[: len(ids)] != ids for r, ids in zip(rows, hf_ids))
    print(f"wrote {args.out}: {len(texts)} texts, {differ} tokenized differently by the two")


if __name__ == "__main__":
    main()
