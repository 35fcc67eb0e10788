"""Thin DVC entry points, one per stage (dvc.yaml runs `python -m stages.<name>`); `python -m stages
<name>` runs any of them by name. Not installed: dvc runs them from the repository's root."""
