"""Campaigns: the pipeline's stages as cluster or local jobs, collected afterwards by `dvc repro`.

DVC runs one stage at a time per workspace. A campaign runs each stale stage as its own job, in
its own clone of the launch's commit, sharing the workspace's DVC cache; every job's `dvc repro`
records its stage in DVC's run-cache, from which one `dvc repro` in the workspace restores them all.
"""
