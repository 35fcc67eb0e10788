"""The networks: the recurrent cell and its language model, many cells stacked as one model, the
chunked decoder loss."""
