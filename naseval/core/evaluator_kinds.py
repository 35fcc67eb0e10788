"""The evaluators that train a supernet, named below every layer: for the search's factory
(naseval/search/family.py) and for the analysis, which reads records, not the search code."""

SUPERNETS = ("shared_weights", "few_shot", "fair_sampling", "landmark")
