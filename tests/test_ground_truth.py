from naseval.ground_truth import GroundTruthConfig, ground_truth_record
from naseval.model import ModelConfig
from naseval.space import SearchSpace
from naseval.train import TrainConfig, train_cell

TOY_MODEL = ModelConfig(hidden_size=8)
TOY_TRAIN = TrainConfig(epochs=1, batch_size=8, eval_batch_size=8, bptt=10)


def test_every_cell_is_trained_and_workers_do_not_change_results(tiny_corpus):
    space = SearchSpace(1)
    alone = ground_truth_record(space, tiny_corpus, TOY_MODEL, TOY_TRAIN, GroundTruthConfig(workers=1), 5)
    pooled = ground_truth_record(space, tiny_corpus, TOY_MODEL, TOY_TRAIN, GroundTruthConfig(workers=2), 5)
    assert [c["cell_id"] for c in alone["cells"]] == [0, 1, 2, 3]
    assert [c["genotype"] for c in alone["cells"]] == ["tanh:0", "relu:0", "sigmoid:0", "identity:0"]
    for a, b in zip(alone["cells"], pooled["cells"], strict=True):
        assert abs(a["test_ppl"] - b["test_ppl"]) < 1e-3 * a["test_ppl"]
    direct = train_cell(space.from_id(2), tiny_corpus, 1, TOY_MODEL, TOY_TRAIN, 5, show_progress=False)
    assert abs(direct.test_ppl - alone["cells"][2]["test_ppl"]) < 1e-3 * direct.test_ppl


def test_a_large_space_gets_a_record_without_cells(tiny_corpus):
    record = ground_truth_record(SearchSpace(8), tiny_corpus, TOY_MODEL, TOY_TRAIN, GroundTruthConfig(), 0)
    assert record["enumerable"] is False and record["cells"] == []
    assert "2642411520 cells > ground_truth.max_cells 64" in record["reason"]
