"""Reference perplexities of the prepared corpus: what a model reaches that has learned word
frequencies alone (unigram) or one word of context (bigram).

They give "did this cell learn anything?" an absolute scale that does not depend on the other
cells: a recurrent language model first reaches the unigram plateau (it learns the output bias),
and only a model that uses its recurrent state goes below it. Both are estimated on the training
split and scored on the others as the language models are, token by token along the stream.
The unigram is add-one smoothed; the bigram is Witten-Bell interpolated with that unigram,
which has no free parameter to tune.
"""

from __future__ import annotations

import numpy as np

from naseval.core.data import Corpus

EVALUATED_SPLITS = ("valid", "test")


def unigram_probabilities(train: np.ndarray, vocab_size: int) -> np.ndarray:
    counts = np.bincount(train, minlength=vocab_size).astype(float) + 1.0
    return counts / counts.sum()


def bigram_log_probabilities(train: np.ndarray, tokens: np.ndarray, unigram: np.ndarray) -> np.ndarray:
    """log P(tokens[t] | tokens[t - 1]) for t >= 1, Witten-Bell: lambda_v = c(v) / (c(v) + T(v)),
    T(v) the number of distinct words seen after v."""
    vocab_size = len(unigram)
    pairs = train[:-1] * vocab_size + train[1:]
    pair_ids, pair_counts = np.unique(pairs, return_counts=True)
    history_counts = np.bincount(train[:-1], minlength=vocab_size).astype(float)
    followers = np.bincount(pair_ids // vocab_size, minlength=vocab_size).astype(float)
    wanted = tokens[:-1] * vocab_size + tokens[1:]
    where = np.searchsorted(pair_ids, wanted).clip(max=len(pair_ids) - 1)
    seen = np.where(pair_ids[where] == wanted, pair_counts[where], 0).astype(float)
    history = history_counts[tokens[:-1]]
    total = history + followers[tokens[:-1]]
    with np.errstate(invalid="ignore", divide="ignore"):
        weight = np.where(total > 0, history / total, 0.0)
        conditional = np.where(history > 0, seen / history, 0.0)
    return np.log(weight * conditional + (1 - weight) * unigram[tokens[1:]])


def reference_perplexities(corpus: Corpus) -> dict[str, dict[str, float]]:
    """{"unigram": {split: ppl}, "bigram": {split: ppl}} for the valid and test splits."""
    train, vocab_size = corpus.splits["train"], len(corpus.vocabulary)
    unigram = unigram_probabilities(train, vocab_size)
    result: dict[str, dict[str, float]] = {"unigram": {}, "bigram": {}}
    for split in EVALUATED_SPLITS:
        tokens = corpus.splits[split]
        # the first token has no prediction in the language models' stream either
        result["unigram"][split] = float(np.exp(-np.log(unigram[tokens[1:]]).mean()))
        result["bigram"][split] = float(np.exp(-bigram_log_probabilities(train, tokens, unigram).mean()))
    return result
