"""The SRNN in Pyro: config, networks, model and guide, batching, training, evaluation, sampling.

Import the modules themselves (``pyro_srnn.model``, ``pyro_srnn.train``, ...); this package file stays
empty so that the command line starts without loading torch.
"""
