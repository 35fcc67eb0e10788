"""Penn Treebank (Mikolov's preprocessed version): fetch, verify, tokenize, batchify.

Tokenization follows the standard word-level LM code (pytorch/examples word_language_model,
AWD-LSTM, DARTS): split each line on whitespace and append `<eos>`.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tarfile
import tempfile
import urllib.request
from collections import Counter
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch

from naseval.core.errors import NasevalError
from naseval.core.params import require

SPLITS = ("train", "valid", "test")
PTB_MD5 = {
    "train": "f26c4b92c5fdc7b3f8c7cdcb991d8420",
    "valid": "aa0affc06ff7c36e977d7cd49e3839bf",
    "test": "8b80168b89c18661a38ef683c0dc3721",
}
# Mikolov's RNNLM toolkit archive, the origin of the preprocessed PTB used by every LM paper.
PTB_ARCHIVE_URL = "http://www.fit.vutbr.cz/~imikolov/rnnlm/simple-examples.tgz"
PTB_DIR_ENV = "NASEVAL_PTB_DIR"
EOS = "<eos>"
UNK = "<unk>"


@dataclass(frozen=True)
class DataConfig:
    """params.yaml `data`: where PTB comes from and how much of it a profile uses."""

    ptb_dir: str | None = None  # local directory; NASEVAL_PTB_DIR overrides; None downloads
    url: str = PTB_ARCHIVE_URL
    vocab_size: int | None = None  # keep the most frequent words, map the rest to <unk>
    max_train_tokens: int | None = None  # the first N tokens of each split
    max_eval_tokens: int | None = None

    def __post_init__(self) -> None:
        for key in ("vocab_size", "max_train_tokens", "max_eval_tokens"):
            value = getattr(self, key)
            require(value is None or value >= 2, key, value, "null or an integer >= 2")


def ptb_filename(split: str) -> str:
    return f"ptb.{split}.txt"


def md5sum(path: Path) -> str:
    digest = hashlib.md5()
    with open(path, "rb") as file:
        for block in iter(lambda: file.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def verify_ptb_dir(directory: Path, checksums: dict[str, str] = PTB_MD5) -> dict[str, Path]:
    """The three split files of `directory`, each checked against its expected MD5."""
    files = {split: directory / ptb_filename(split) for split in SPLITS}
    for split, path in files.items():
        if not path.is_file():
            raise NasevalError(f"missing PTB file {path} (expected md5 {checksums[split]})")
    for split, path in files.items():
        actual = md5sum(path)
        if actual != checksums[split]:
            raise NasevalError(f"corrupted PTB file {path}: md5 {actual}, expected {checksums[split]}")
    return files


def download_ptb(url: str, directory: Path, checksums: dict[str, str] = PTB_MD5) -> dict[str, Path]:
    """Fetch Mikolov's archive, extract the three split files into `directory`, verify them."""
    directory.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as scratch:
        archive = Path(scratch) / "ptb.tgz"
        try:
            with urllib.request.urlopen(url, timeout=60) as response, open(archive, "wb") as out:
                shutil.copyfileobj(response, out)
        except OSError as error:
            raise NasevalError(
                f"could not download PTB from {url} ({error}); set {PTB_DIR_ENV} or data.ptb_dir "
                "to a directory holding ptb.train.txt, ptb.valid.txt and ptb.test.txt"
            ) from error
        wanted = {ptb_filename(split) for split in SPLITS}
        with tarfile.open(archive) as tar:
            for member in tar.getmembers():
                name = Path(member.name).name
                if member.isfile() and name in wanted:
                    source = tar.extractfile(member)
                    assert source is not None
                    with open(directory / name, "wb") as out:
                        shutil.copyfileobj(source, out)
    return verify_ptb_dir(directory, checksums)


def default_download_dir() -> Path:
    """Downloads are cached outside the repository, like torchvision's and HF's datasets."""
    cache = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(cache) / "naseval" / "ptb"


def locate_ptb(config: DataConfig, download_dir: Path) -> dict[str, Path]:
    """NASEVAL_PTB_DIR, else data.ptb_dir, else a verified download into `download_dir`."""
    local = os.environ.get(PTB_DIR_ENV) or config.ptb_dir
    if local:
        directory = Path(local)
        if not directory.is_dir():
            raise NasevalError(f"PTB directory {directory} does not exist")
        return verify_ptb_dir(directory)
    return download_ptb(config.url, download_dir)


def read_words(path: Path) -> list[str]:
    words = []
    with open(path, encoding="utf-8") as file:
        for line in file:
            words.extend(line.split())
            words.append(EOS)
    return words


def build_vocabulary(train_words: list[str], vocab_size: int | None) -> list[str]:
    """Words by decreasing training frequency (ties: first appearance), always with <unk>.

    Capping keeps the vocab_size - 1 most frequent words; the others become <unk>, as do
    validation and test words never seen in (a token budget of) the training split.
    """
    counts = Counter(train_words)
    words = [w for w in sorted(counts, key=lambda w: -counts[w]) if w != UNK]  # stable sort
    if vocab_size is not None:
        words = words[: vocab_size - 1]
    return words + [UNK]


def encode(words: list[str], vocabulary: list[str]) -> np.ndarray:
    index = {word: i for i, word in enumerate(vocabulary)}
    unk = index[UNK]
    return np.asarray([index.get(word, unk) for word in words], dtype=np.int64)


@dataclass(frozen=True)
class Corpus:
    vocabulary: list[str]
    splits: dict[str, np.ndarray]  # split -> token ids

    def digest(self) -> str:
        """Identifies the data a run was trained on (for its checkpoints)."""
        content = hashlib.sha256("\n".join(self.vocabulary).encode())
        for split in SPLITS:
            content.update(np.ascontiguousarray(self.splits[split]).tobytes())
        return content.hexdigest()[:16]

    def metadata(self, files: dict[str, Path], config: DataConfig) -> dict:
        """What the results were trained on, recorded beside the prepared data."""
        return {
            "vocab_size": len(self.vocabulary),
            "tokens": {split: int(len(ids)) for split, ids in self.splits.items()},
            "source": {split: str(path) for split, path in files.items()},
            "md5": {split: PTB_MD5[split] for split in SPLITS},
            "config": asdict(config),
        }


def tokenize(files: dict[str, Path], config: DataConfig) -> Corpus:
    words = {split: read_words(files[split]) for split in SPLITS}
    limits = {"train": config.max_train_tokens}
    for split in SPLITS:
        limit = limits.get(split, config.max_eval_tokens)
        if limit is not None:
            words[split] = words[split][:limit]
    vocabulary = build_vocabulary(words["train"], config.vocab_size)
    return Corpus(vocabulary, {split: encode(words[split], vocabulary) for split in SPLITS})


def save_corpus(corpus: Corpus, directory: Path) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "vocab.txt").write_text("\n".join(corpus.vocabulary) + "\n")
    for split, ids in corpus.splits.items():
        np.save(directory / f"{split}.npy", ids)


def load_corpus(directory: Path) -> Corpus:
    vocab_file = directory / "vocab.txt"
    if not vocab_file.is_file():
        raise NasevalError(f"prepared data not found in {directory}: run the prepare stage first")
    vocabulary = vocab_file.read_text().splitlines()
    splits = {s: np.load(directory / f"{s}.npy") for s in SPLITS}
    empty = [s for s, ids in splits.items() if len(ids) == 0]
    if empty or not vocabulary:
        raise NasevalError(f"empty corpus in {directory}: {', '.join(empty) or 'vocabulary'} has no tokens; "
                           f"run the prepare stage again")
    return Corpus(vocabulary, splits)


def batchify(ids: np.ndarray, batch_size: int, device: torch.device) -> torch.Tensor:
    """Lay the token stream out as `batch_size` parallel columns, dropping the ragged tail.

    ┌ a g m s ┐
    │ b h n t │      the stream a b c ... x, batch 4:
    │ c i o u │      each column is read top to bottom,
    │ d j p v │      and batches are consecutive row blocks.
    │ e k q w │
    └ f l r x ┘
    """
    rows = len(ids) // batch_size
    if rows < 2:
        raise NasevalError(f"{len(ids)} tokens are too few for batch size {batch_size}")
    data = torch.from_numpy(ids[: rows * batch_size]).view(batch_size, rows).t().contiguous()
    return data.to(device)  # (rows, batch)


def get_batch(source: torch.Tensor, start: int, seq_len: int) -> tuple[torch.Tensor, torch.Tensor]:
    seq_len = min(seq_len, len(source) - 1 - start)
    return source[start : start + seq_len], source[start + 1 : start + 1 + seq_len]
