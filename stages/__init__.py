"""Thin DVC entry points, one per stage; `naseval <stage>` runs the same functions (see cli.py)."""
