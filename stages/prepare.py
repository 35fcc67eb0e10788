"""prepare: PTB text -> vocabulary and token ids under data/prepared."""

from pathlib import Path

import typer

from naseval.core.command import run_stage
from naseval.core.data import DataConfig, default_download_dir, locate_ptb, save_corpus, tokenize
from naseval.core.ngram import reference_perplexities
from naseval.core.params import load, read_params
from naseval.core.runtime import ENVIRONMENT, atomic_directory, environment, write_json


def main(
    out: Path = typer.Option(Path("data/prepared"), help="Folder for vocab.txt, {train,valid,test}.npy, meta.json."),
    params: Path = typer.Option(Path("params.yaml"), help="Reads its `data` section."),
) -> None:
    """Verify and tokenize PTB (NASEVAL_PTB_DIR, else data.ptb_dir, else a checked download)."""
    config = load(DataConfig, read_params(params), "data")
    files = locate_ptb(config, default_download_dir())
    corpus = tokenize(files, config)
    with atomic_directory(out) as folder:
        save_corpus(corpus, folder)
        # the unigram perplexity is the line below which a cell has learned (docs/reliability.md)
        write_json(folder / "meta.json", corpus.metadata(files, config)
                   | {"reference_perplexity": reference_perplexities(corpus)})
        write_json(folder / ENVIRONMENT, environment())


if __name__ == "__main__":
    run_stage(main)
