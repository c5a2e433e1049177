"""Text pipeline: tokenizers, the stdlib corpus, the synthetic grammar, user text files."""

from __future__ import annotations

import itertools
import json
import math
import time
from pathlib import Path

import numpy as np
import pytest
import torch

import genzoo
from genzoo.cli import main
from genzoo.data import text
from genzoo.errors import DataError
from genzoo.workflow import generate_text, train


def test_char_tokenizer_round_trip_unknown_and_specials():
    tok = text.Tokenizer.fit("hello world", level="char")
    assert tok.tokens[:4] == text.SPECIALS and tok.vocab_size == 4 + len(set("hello world"))
    assert tok.tokens[4] == "l"  # most frequent first
    assert tok.decode(tok.encode("hold")) == "hold"
    assert tok.encode("z") == [text.UNK]
    ids = tok.encode("he", bos=True, eos=True)
    assert ids[0] == text.BOS and ids[-1] == text.EOS
    assert tok.decode(ids + [text.PAD, tok.index["o"]]) == "he"  # stops at <eos>
    assert text.Tokenizer.from_dict(tok.to_dict()).tokens == tok.tokens


def test_word_tokenizer_caps_the_vocabulary():
    tok = text.Tokenizer.fit("The cat, the dog; the END. a b", "word", max_vocab=3, lowercase=True)
    assert tok.tokens[4:] == ("the", ",", ".")  # 3 most frequent, ties alphabetical
    assert tok.decode(tok.encode("The cat.")) == "the <unk> ."
    with pytest.raises(ValueError, match="level"):
        text.Tokenizer([], level="byte")


def test_stdlib_corpus_is_deterministic_fast_and_registered():
    text.stdlib_corpus.cache_clear()
    tic = time.perf_counter()
    corpus = text.stdlib_corpus()
    assert time.perf_counter() - tic < 1.0
    assert len(corpus) > 100_000 and "JSON" in corpus
    assert corpus == text.stdlib_corpus()
    for name in ("stdlib-chars", "stdlib-words", "stdlib-sentences", "grammar"):
        info = genzoo.data.dataset_info(name)
        x = genzoo.load_dataset(name, split="train", n=50, seed=1)
        assert info.kind == "text" and x.dtype == torch.int64 and x.shape == (50, *info.shape)
        assert int(x.min()) >= 0 and int(x.max()) < info.levels
        assert info.levels == text.tokenizer_for(name).vocab_size
        assert torch.equal(x, genzoo.load_dataset(name, split="train", n=50, seed=1))


def test_corpus_splits_are_disjoint_regions_of_the_text():
    train = genzoo.load_dataset("stdlib-chars", split="train")
    test = genzoo.load_dataset("stdlib-chars", split="test")
    tok = text.tokenizer_for("stdlib-chars")
    corpus = text.stdlib_corpus()
    first = tok.decode(test[0])
    assert first in corpus and corpus.index(first) > 0.85 * len(corpus)
    assert len(train) > 7 * len(test)


def test_sentences_end_with_eos_then_padding():
    x = genzoo.load_dataset("stdlib-sentences", n=200)
    for row in x.tolist():
        end = row.index(text.EOS)
        assert end > 0 and all(t == text.PAD for t in row[end + 1 :])
        assert text.PAD not in row[:end]


def test_grammar_entropy_rate_matches_enumeration_and_samples():
    g = text.GRAMMAR
    pi, p = g.stationary, g.matrix
    assert np.allclose(pi @ p, pi) and math.isclose(pi.sum(), 1.0)
    # exact entropy of 3 symbols by enumerating all 8^3 sequences
    seqs = np.array(list(itertools.product(range(len(g.symbols)), repeat=3)))
    logp = g.log_prob(seqs)
    probs = np.exp(logp)
    assert math.isclose(probs.sum(), 1.0, rel_tol=1e-12)
    finite = probs > 0
    assert math.isclose(-(probs[finite] * logp[finite]).sum(), g.sequence_entropy(3), rel_tol=1e-9)
    assert math.isclose(text.true_entropy_rate(), 1.06171555, rel_tol=1e-6)
    # samples: allowed transitions only, mean -log p matches the entropy within 4 std errors
    x = genzoo.load_dataset("grammar", split="test", n=4000)
    lp = genzoo.data.true_log_prob("grammar", x).double()
    assert torch.isfinite(lp).all()
    err = float(lp.std()) / math.sqrt(len(lp))
    assert abs(float(-lp.mean()) - genzoo.data.true_entropy("grammar")) < 4 * err
    shifted = x.clone()
    shifted[:, 0] = 0  # <pad> is not a symbol of the language
    assert torch.isinf(genzoo.data.true_log_prob("grammar", shifted)).all()


def test_user_text_file(tmp_path):
    path = tmp_path / "poem.txt"
    body = "the quick brown fox jumps over the lazy dog. " * 40
    path.write_text(body, encoding="utf-8")
    x, tok = text.load_text_file(path, split="train", seq_len=16)
    assert x.dtype == torch.int64 and x.shape[1] == 16
    assert all(tok.decode(row) in body for row in x)
    val, _ = text.load_text_file(path, split="val", seq_len=16)
    assert len(val) > 0 and len(x) > len(val)
    words, wtok = text.load_text_file(path, level="word", seq_len=4, max_vocab=3)
    assert wtok.vocab_size == 7 and int(words.max()) < 7
    with pytest.raises(DataError, match="longer text"):
        text.load_text_file(path, seq_len=1000)
    with pytest.raises(DataError, match="no such"):
        text.load_text_file(tmp_path / "missing.txt")


def test_pad_sequences_and_windows():
    out = text.pad_sequences([[5, 6], [7, 8, 9, 10]], 4)
    assert out.tolist() == [[5, 6, text.EOS, text.PAD], [7, 8, 9, 10]]
    assert text.windows(list(range(10)), 3).tolist() == [[0, 1, 2], [3, 4, 5], [6, 7, 8]]


# -- text files by path: genzoo train/sample/eval ---------------------------------------------
SMALL_LM = ["--set", "hidden=32", "--set", "embedding=16", "--batch-size", "16"]


def _story(tmp_path, name: str = "story") -> tuple[Path, str]:
    """A UTF-8 text file without extension: short lines of a few words, some accented."""
    rng = np.random.default_rng(0)
    words = ["the", "fox", "saw", "a", "hen", "by", "the", "barn", "café", "über", "déjà"]
    lines = [" ".join(rng.choice(words, size=rng.integers(3, 8))) + "." for _ in range(120)]
    body = "\n".join(lines) + "\n"
    path = tmp_path / name
    path.write_text(body, encoding="utf-8")
    return path, body


def test_cli_trains_samples_and_evaluates_a_text_file_without_extension(tmp_path, capsys):
    path, body = _story(tmp_path)
    run = tmp_path / "run"
    argv = ["train", "lstm-lm", "--data", str(path), "--steps", "30", "--lr", "0.01"]
    assert main([*argv, *SMALL_LM, "--out", str(run)]) == 0
    info = json.loads((run / "run.json").read_text(encoding="utf-8"))
    assert info["data_options"]["tokens"] == "chars" and info["data_file"] == str(path)
    assert info["dataset"].startswith(f"{path}?tokens=chars&layout=windows&seq_len=64")
    assert "tokens" not in genzoo.load(run).config  # a data option, not a hyper-parameter
    assert text.tokenizer_for(run).tokens[4:] == text.tokenizer_for(path).tokens[4:]
    capsys.readouterr()
    assert main(["eval", str(run)]) == 0
    scores = json.loads(capsys.readouterr().out)
    assert math.isfinite(scores["nll"]) and scores["bits_per_dim"] < math.log2(len(set(body)) + 4)
    path.rename(tmp_path / "moved")  # sampling needs only the run folder
    assert main(["sample", str(run), "-n", "4", "--prompt", "the", "--top-k", "3"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("the") and set(out) <= set(body)
    assert main(["sample", str(run), "-n", "3"]) == 0
    ids = np.load(run / "samples.npy")
    assert ids.shape == (3, 64) and text.tokenizer_for(run).decode_batch(ids)


def test_words_mode_and_a_changed_file(tmp_path, capsys):
    path, body = _story(tmp_path, "story.txt")
    vocab = set(body.replace(".", " . ").split())
    run = tmp_path / "run"
    argv = ["train", "lstm-lm", "--data", str(path), "--steps", "5", "--out", str(run)]
    assert main([*argv, *SMALL_LM, "--set", "tokens=words", "--set", "seq_len=8"]) == 0
    assert (
        "tokens=words&layout=windows&seq_len=8"
        in json.loads((run / "run.json").read_text())["dataset"]
    )
    lines = generate_text(run, n=3, prompt="the fox", top_k=2)
    assert all(line.startswith("the fox") and set(line.split()) <= vocab for line in lines)
    x = genzoo.load_dataset(path, tokens="words", seq_len=8)
    assert all(
        set(row.split()) <= vocab
        for row in text.tokenizer_for(path, tokens="words").decode_batch(x)
    )
    capsys.readouterr()
    path.write_text(body + "zebra\n", encoding="utf-8")  # a new word: the vocabulary moved on
    assert main(["eval", str(run)]) == 2
    assert "no longer the one this run was trained with" in capsys.readouterr().err
    assert generate_text(run, n=1, prompt="the")  # the recorded vocabulary still decodes


def test_binary_and_non_utf8_files_are_refused(tmp_path, capsys):
    garbage = tmp_path / "garbage"
    garbage.write_bytes(bytes(range(256)) * 4)
    assert main(["train", "lstm-lm", "--data", str(garbage), "--steps", "1"]) == 2
    err = capsys.readouterr().err
    assert "neither an array file nor UTF-8 text" in err and ".npy, .npz, .csv" in err
    (tmp_path / "latin.txt").write_bytes("caf\xe9 ".encode("latin-1") * 300)
    with pytest.raises(DataError, match="not UTF-8 text.*save it as UTF-8"):
        genzoo.load_dataset(tmp_path / "latin.txt")
    np.save(tmp_path / "a.npy", np.zeros((20, 2)))
    (tmp_path / "a.npy").rename(tmp_path / "array")
    with pytest.raises(DataError, match="give it the .npy extension"):
        genzoo.data.dataset_info(tmp_path / "array")
    with pytest.raises(DataError, match="text files given by path"):
        train("lstm-lm", "grammar", hparams={"tokens": "words"}, steps=1)
    with pytest.raises(DataError, match="tokens must be 'chars' or 'words'"):
        genzoo.load_dataset(_story(tmp_path)[0], tokens="bytes")


def test_sentence_vae_reads_one_line_per_example(tmp_path):
    path, body = _story(tmp_path)
    hparams = {"tokens": "words", "hidden": 16, "embed_dim": 8, "latent_dim": 4}
    model, _ = train("sentence-vae", str(path), tmp_path / "run", hparams, steps=3,
                            batch_size=8)  # fmt: skip
    info = json.loads((tmp_path / "run" / "run.json").read_text())
    assert info["data_options"]["layout"] == "lines"
    tok = text.tokenizer_for(tmp_path / "run")
    assert model.vocab_size == tok.vocab_size
    x = genzoo.load_dataset(info["dataset"], split="test")
    assert (
        x.shape[1] == model.data_shape[0] == 1 + max(len(tok.encode(b)) for b in body.split("\n"))
    )
    for row in x.tolist():
        end = row.index(text.EOS)
        assert all(t == text.PAD for t in row[end + 1 :]) and text.PAD not in row[:end]
        assert tok.decode(row).replace(" .", ".") in body
