"""The SRNN in Pyro, and the models it is compared with (the RNN, RNN-NADE, the TSBN), behind one
sequence-model interface: config, networks, model and guide, batching, training, evaluation, sampling.

For notebooks and scripts::

    from pyro_srnn import load_run
    run = load_run("runs/piano-20261128-120000")   # run.model, run.config, run.data
    run.score("test").per_frame()                   # ELBO per frame, as `srnn evaluate`
    run.sample(steps=200, n=2)                      # piano rolls, as `srnn sample`

``run.model.model`` and ``run.model.guide`` take ``run.batch(split)`` and go to Pyro's own tools
(``pyro.infer.Predictive``, ``Importance``, ``SVI``). The names below load on first use, so that the
command line starts without loading torch.
"""

_EXPORTS = {
    "load_run": "api", "Run": "api", "SRNN": "model", "TSBN": "tsbn", "SequenceModel": "sequence_model",
    "Batch": "sequence_model", "build_model": "models", "SRNNConfig": "config",
    "score_sequences": "evaluate", "sample_rolls": "sample", "Trainer": "train",
}
__all__ = list(_EXPORTS)


def __getattr__(name):
    if name in _EXPORTS:
        import importlib

        return getattr(importlib.import_module(f".{_EXPORTS[name]}", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
