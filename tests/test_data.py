import hashlib
import tarfile
from pathlib import Path

import numpy as np
import pytest
import torch

from naseval.core.data import (
    PTB_MD5,
    SPLITS,
    DataConfig,
    batchify,
    build_vocabulary,
    download_ptb,
    get_batch,
    locate_ptb,
    read_words,
    tokenize,
    verify_ptb_dir,
)
from naseval.core.errors import NasevalError


def write_corpus(folder: Path) -> dict[str, str]:
    """Three tiny split files; returns their md5s."""
    folder.mkdir(parents=True, exist_ok=True)
    texts = {
        "train": " the cat sat on the mat \n the dog sat \n a <unk> ran \n",
        "valid": " the cat ran \n",
        "test": " a dog sat on a mat \n",
    }
    sums = {}
    for split, text in texts.items():
        (folder / f"ptb.{split}.txt").write_text(text)
        sums[split] = hashlib.md5(text.encode()).hexdigest()
    return sums


def test_tokenize_splits_on_spaces_and_appends_eos(tmp_path):
    write_corpus(tmp_path)
    words = read_words(tmp_path / "ptb.train.txt")
    assert words[:7] == ["the", "cat", "sat", "on", "the", "mat", "<eos>"]
    assert words.count("<eos>") == 3 and len(words) == 15


def test_vocabulary_cap_maps_rare_words_to_unk(tmp_path):
    write_corpus(tmp_path)
    files = {s: tmp_path / f"ptb.{s}.txt" for s in SPLITS}
    corpus = tokenize(files, DataConfig(vocab_size=4))
    assert corpus.vocabulary == ["the", "<eos>", "sat", "<unk>"]
    unk = corpus.vocabulary.index("<unk>")
    test_words = ["a", "dog", "sat", "on", "a", "mat", "<eos>"]
    expected = [corpus.vocabulary.index(w) if w in corpus.vocabulary else unk for w in test_words]
    assert corpus.splits["test"].tolist() == expected


def test_token_budget(tmp_path):
    write_corpus(tmp_path)
    files = {s: tmp_path / f"ptb.{s}.txt" for s in SPLITS}
    corpus = tokenize(files, DataConfig(max_train_tokens=5, max_eval_tokens=3))
    assert [len(corpus.splits[s]) for s in SPLITS] == [5, 3, 3]
    assert corpus.metadata(files, DataConfig(max_train_tokens=5))["tokens"]["train"] == 5


def test_missing_file_names_file_and_checksum(tmp_path):
    write_corpus(tmp_path)
    (tmp_path / "ptb.valid.txt").unlink()
    with pytest.raises(NasevalError, match=f"missing PTB file .*ptb.valid.txt .*{PTB_MD5['valid']}"):
        verify_ptb_dir(tmp_path)


def test_corrupted_file_names_file_and_checksum(tmp_path):
    sums = write_corpus(tmp_path)
    with pytest.raises(NasevalError, match=f"corrupted PTB file .*ptb.train.txt: md5 {sums['train']}, "
                                            f"expected {PTB_MD5['train']}"):
        verify_ptb_dir(tmp_path)


def test_download_extracts_and_verifies_an_archive(tmp_path):
    sums = write_corpus(tmp_path / "simple-examples" / "data")
    archive = tmp_path / "simple-examples.tgz"
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(tmp_path / "simple-examples", arcname="./simple-examples")
    files = download_ptb(archive.as_uri(), tmp_path / "cache", sums)
    assert files["test"].read_text() == " a dog sat on a mat \n"
    with pytest.raises(NasevalError, match="corrupted PTB file"):
        download_ptb(archive.as_uri(), tmp_path / "cache2")  # the real checksums do not match


def test_download_failure_says_what_to_do(tmp_path):
    with pytest.raises(NasevalError, match="could not download PTB .* set NASEVAL_PTB_DIR"):
        download_ptb((tmp_path / "nothing.tgz").as_uri(), tmp_path / "cache")


def test_environment_overrides_params(tmp_path, monkeypatch):
    monkeypatch.setenv("NASEVAL_PTB_DIR", str(tmp_path / "absent"))
    with pytest.raises(NasevalError, match="PTB directory .*absent does not exist"):
        locate_ptb(DataConfig(ptb_dir="/somewhere/else"), tmp_path)


def test_real_ptb_statistics(ptb_dir, monkeypatch):
    monkeypatch.setenv("NASEVAL_PTB_DIR", str(ptb_dir))
    corpus = tokenize(locate_ptb(DataConfig(), Path("unused")), DataConfig())
    assert len(corpus.vocabulary) == 10_000
    assert [len(corpus.splits[s]) for s in SPLITS] == [929_589, 73_760, 82_430]


def test_batchify_lays_the_stream_out_in_columns():
    data = batchify(np.arange(26), 4, torch.device("cpu"))
    assert data.shape == (6, 4)
    assert data[:, 1].tolist() == [6, 7, 8, 9, 10, 11]
    x, y = get_batch(data, 4, 35)
    assert x.shape == (1, 4) and y[0].tolist() == [5, 11, 17, 23]


def test_vocabulary_ties_keep_first_appearance():
    assert build_vocabulary(["b", "a", "b", "c", "a"], None) == ["b", "a", "c", "<unk>"]
