"""How a search scores cells: its evaluators (a supernet with shared weights, or the oracle of held-out
ground-truth seeds) and what every weight-sharing policy does with its supernet."""
