"""Character language models against a unigram baseline and general-purpose compressors.

On the test split of ``stdlib-chars`` (windows of 64 characters of standard-library
docstrings), in bits per character:

- unigram: character frequencies counted on the train split with add-one (Laplace) smoothing
  over all the model's output ids (the dataset's ``levels``, specials included), scored on
  every test token; the cross-entropy ``-1/N sum log2 q(c)``.
- ``lstm-lm`` and ``transformer-lm``: trained with ``genzoo.workflow.train`` on the train
  split, scored with ``genzoo.workflow.evaluate`` (``bits_per_dim``: the exact ``-log2 P`` of
  each 64-character window, divided by 64; every window is scored on its own, from the start
  symbol, with no context from the windows before it).
- gzip -9 and xz -9e (Python's ``gzip`` and ``lzma`` modules, ``preset=9 | PRESET_EXTREME``):
  compressed size in bits (headers and checksums included) over the number of characters
  compressed. The text compressed is the test ids decoded with ``tokenizer_for("stdlib-chars")``
  one window at a time, windows concatenated with nothing between them, with the special
  tokens dropped (``<pad> <bos> <eos>`` never occur; the test split holds a few ``<unk>``, the
  corpus's non-ASCII characters, which are left out), encoded as ASCII (one byte a character).
  Two orders: the windows as ``load_text_dataset`` returns them (shuffled, the exact windows
  the models score) and in their corpus order (the contiguous test region, which lets the
  compressors use context across window boundaries that the models never see).

On ``grammar`` (a first-order Markov language with an exact entropy), ``lstm-lm`` with the same
settings is compared with the exact floor ``true_entropy("grammar") / seq_len`` (the entropy of
one 32-symbol sequence per symbol, which includes the first symbol's ``H(pi)``) and with the
entropy rate ``H = -sum_i pi_i sum_j P_ij log P_ij``, both converted to bits.

Everything runs on one CPU thread with fixed seeds, so a rerun prints the same numbers.

    python benchmarks/lm_vs_compression.py
    python benchmarks/lm_vs_compression.py --lstm-steps 2000 --transformer-steps 2000
"""

from __future__ import annotations

import argparse
import gzip
import lzma
import math
import shlex
import sys
import time

import numpy as np
import torch

from genzoo import data as datasets
from genzoo import workflow
from genzoo.data import text
from genzoo.data._common import split_sizes

DATASET = "stdlib-chars"
LN2 = math.log(2)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--seed", type=int, default=0, help="trainer seed (parameters and batches)")
    p.add_argument("--lstm-steps", type=int, default=400)
    p.add_argument("--lstm-batch-size", type=int, default=32)
    p.add_argument("--lstm-lr", type=float, default=3e-3)
    p.add_argument("--lstm-hidden", type=int, default=128)
    p.add_argument("--lstm-embedding", type=int, default=32)
    p.add_argument("--transformer-steps", type=int, default=400)
    p.add_argument("--transformer-batch-size", type=int, default=32)
    p.add_argument("--transformer-lr", type=float, default=1e-3)
    p.add_argument("--transformer-width", type=int, default=128)
    p.add_argument("--transformer-layers", type=int, default=2)
    p.add_argument("--transformer-heads", type=int, default=4)
    p.add_argument("--skip-grammar", action="store_true", help="leave out the grammar rows")
    return p.parse_args(argv)


def unigram_bits(train: torch.Tensor, test: torch.Tensor, levels: int) -> float:
    """Cross-entropy (bits/token) on ``test`` of add-one-smoothed unigram counts of ``train``."""
    counts = np.bincount(train.flatten().numpy(), minlength=levels).astype(np.float64) + 1.0
    log2q = np.log2(counts / counts.sum())
    return float(-log2q[test.flatten().numpy()].mean())


def decode_windows(ids: torch.Tensor | np.ndarray, tokenizer: text.Tokenizer) -> str:
    """The windows' characters, concatenated, with every special id (0..3) dropped."""
    ids = np.asarray(ids)
    kept = ids[ids >= len(text.SPECIALS)]
    return "".join(tokenizer.tokens[i] for i in kept.tolist())


def corpus_order_test_windows(test: torch.Tensor, seq_len: int) -> np.ndarray:
    """The test windows in the order they have in the corpus (the contiguous test region).

    Rebuilt as ``load_text_dataset`` builds the split (windows of the encoded corpus, 80/10/10
    regions) and checked to be the same windows as ``test``, up to their order.
    """
    tokenizer = text.tokenizer_for(DATASET)
    windowed = text.windows(tokenizer.encode(text.stdlib_corpus()), seq_len)
    n_train, n_val, _ = split_sizes(len(windowed), (0.8, 0.1, 0.1))
    region = windowed[n_train + n_val :]
    if sorted(map(tuple, region.tolist())) != sorted(map(tuple, test.tolist())):
        raise RuntimeError("could not rebuild the corpus order of the test windows")
    return region


def compressed_bits(data: bytes) -> dict[str, int]:
    return {
        "gzip -9": 8 * len(gzip.compress(data, compresslevel=9, mtime=0)),
        "xz -9e": 8 * len(lzma.compress(data, preset=9 | lzma.PRESET_EXTREME)),
    }


def train_eval(name: str, dataset: str, steps: int, batch_size: int, lr: float, hparams, seed):
    start = time.perf_counter()
    model, _ = workflow.train(
        name, dataset, steps=steps, batch_size=batch_size, lr=lr, hparams=hparams,
        seed=seed, progress=False,
    )  # fmt: skip
    model.eval()
    result = workflow.evaluate(model, dataset)
    result["seconds"] = time.perf_counter() - start
    result["model_obj"] = model
    print(f"  {name} on {dataset}: {result['bits_per_dim']:.4f} bits/token "
          f"({result['seconds']:.0f} s)", file=sys.stderr)  # fmt: skip
    return result


def unk_bits(model, test: torch.Tensor) -> tuple[int, float]:
    """Number of ``<unk>`` test tokens and the model's total ``-log2 P`` on them."""
    with torch.no_grad():
        terms = model.log_prob_terms(test).double().cpu()
    mask = test == text.UNK
    return int(mask.sum()), float(-terms[mask].sum() / LN2)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    torch.set_num_threads(1)
    torch.manual_seed(args.seed)
    command = "python " + " ".join(shlex.quote(a) for a in [sys.argv[0], *(argv or sys.argv[1:])])

    info = datasets.dataset_info(DATASET)
    seq_len, levels = info.shape[0], info.levels
    train = datasets.load_dataset(DATASET, split="train")
    test = datasets.load_dataset(DATASET, split="test")
    tokenizer = text.tokenizer_for(DATASET)
    n_tokens = test.numel()
    rows: list[tuple[str, str, str]] = []  # (method, bits/char, notes)

    # (1) unigram baseline
    uni = unigram_bits(train, test, levels)
    rows.append(("unigram (train counts, add-one)", f"{uni:.3f}",
                 f"{levels} ids, {n_tokens} test tokens"))  # fmt: skip

    # (2) language models
    print("training (one CPU thread) ...", file=sys.stderr)
    lstm_h = {"hidden": args.lstm_hidden, "embedding": args.lstm_embedding}
    lstm = train_eval("lstm-lm", DATASET, args.lstm_steps, args.lstm_batch_size, args.lstm_lr,
                      lstm_h, args.seed)  # fmt: skip
    tf_h = {"width": args.transformer_width, "n_layers": args.transformer_layers,
            "heads": args.transformer_heads}  # fmt: skip
    tf = train_eval("transformer-lm", DATASET, args.transformer_steps,
                    args.transformer_batch_size, args.transformer_lr, tf_h, args.seed)  # fmt: skip
    for label, res, steps, bs, lr, hp in (
        ("lstm-lm", lstm, args.lstm_steps, args.lstm_batch_size, args.lstm_lr, lstm_h),
        ("transformer-lm", tf, args.transformer_steps, args.transformer_batch_size,
         args.transformer_lr, tf_h),
    ):  # fmt: skip
        n_unk, bits_unk = unk_bits(res["model_obj"], test)
        hp_s = ", ".join(f"{k}={v}" for k, v in hp.items())
        notes = (
            f"{steps} steps, batch {bs}, lr {lr:g}, {hp_s}; {res['seconds']:.0f} s; "
            f"{n_unk} `<unk>` cost {bits_unk / n_tokens:.3f} bits/char of it"
        )
        rows.append((label, f"{res['bits_per_dim']:.3f}", notes))

    # (3) compressors
    for order, windows in (
        ("windows as loaded (shuffled)", test.numpy()),
        ("corpus order (contiguous)", corpus_order_test_windows(test, seq_len)),
    ):
        payload = decode_windows(windows, tokenizer).encode("ascii")
        for name, bits in compressed_bits(payload).items():
            rows.append((f"{name}, {order}", f"{bits / len(payload):.3f}",
                         f"{bits // 8} bytes for {len(payload)} chars"))  # fmt: skip

    # (4) grammar
    grammar_rows: list[tuple[str, str, str]] = []
    if not args.skip_grammar:
        g = train_eval("lstm-lm", "grammar", args.lstm_steps, args.lstm_batch_size,
                       args.lstm_lr, lstm_h, args.seed)  # fmt: skip
        g_len = datasets.dataset_info("grammar").shape[0]
        floor = datasets.true_entropy("grammar") / g_len / LN2
        rate = text.true_entropy_rate("grammar") / LN2
        grammar_rows = [
            ("lstm-lm", f"{g['bits_per_dim']:.4f}",
             f"{g['n_test']} test sequences of {g_len}; KL gap {g['kl_gap']:.3f} nats/seq; "
             f"{g['seconds']:.0f} s"),
            ("exact floor: true_entropy / seq_len", f"{floor:.4f}",
             "H(pi) + (L-1) H, over L = 32"),
            ("entropy rate H", f"{rate:.4f}", "-sum_i pi_i sum_j P_ij log2 P_ij"),
        ]  # fmt: skip

    print()
    print(f"Command: `{command}` (torch {torch.__version__}, Python "
          f"{sys.version.split()[0]}, 1 thread)")  # fmt: skip
    print()
    print(f"`{DATASET}` test split ({test.shape[0]} windows x {seq_len} chars):")
    print()
    print("| method | bits/char | notes |")
    print("|---|---:|---|")
    for row in rows:
        print("| " + " | ".join(row) + " |")
    if grammar_rows:
        print()
        print("`grammar` test split:")
        print()
        print("| method | bits/token | notes |")
        print("|---|---:|---|")
        for row in grammar_rows:
            print("| " + " | ".join(row) + " |")


if __name__ == "__main__":
    main()
