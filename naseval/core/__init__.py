"""The bottom layer, imported by every other: params, errors, runtime (seeding, atomic writes,
logs, the environment), the search space, the corpus, the records stages hand each other, and the
commands' one-line errors."""
