"""Training: the foundation of ``shiftbench mitigate`` (the command itself is not built yet).

- :mod:`shiftbench.train.mitigations`: the :class:`~shiftbench.train.mitigations.Mitigation`
  contract (WILDS-like ``process_batch(labelled, unlabelled)`` + ``objective``) and the
  built-in methods ``erm`` and ``dann``, registered in ``MITIGATIONS``;
- :mod:`shiftbench.train.trainer`: trains a torch head (linear or one hidden layer) on a
  frozen encoder's cached embeddings, seeded, with early stopping on a validation split,
  an atomic checkpoint each epoch that a resumed run continues to the same result, and
  a per-step log; it writes a model folder that the ``trained`` adapter loads.

Both import torch when imported: nothing on the CLI's start path imports them.
"""
