"""naseval: evaluate the search phase of neural architecture search (Yu et al., ICLR 2020).

The folders are the pipeline's layers, each importing only those before it: the bottom modules
(params, errors, runtime, space, data, records), `nn` (the networks), `training` (from-scratch
training and the ground truth), `search` (evaluators, the oracle, the supernet), `policies`, then
`analysis`; `campaign` runs the stages as jobs, `cli` is the `naseval` command.
"""
