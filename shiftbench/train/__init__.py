"""Training: the foundation of ``shiftbench mitigate`` (the command itself is not built yet).

- :mod:`shiftbench.train.mitigations`: the :class:`~shiftbench.train.mitigations.Mitigation`
  contract (WILDS-like ``process_batch(labelled, unlabelled)`` + ``objective``) and the
  built-in methods ``erm`` and ``dann``, registered in ``MITIGATIONS`` (torch is imported
  only when a method trains);
- :mod:`shiftbench.train.nets`: the classifier contract the methods train, the head on
  frozen features, gradient reversal;
- :mod:`shiftbench.train.trainer`: the training loop (seeded, early stopping on a
  validation split, an atomic checkpoint each epoch that a resumed run continues to the
  same result, a per-step log), and a head trained on a frozen encoder's cached
  embeddings, saved for the ``trained`` adapter;
- :mod:`shiftbench.train.finetune`: the same loop fine-tuning a Hugging Face encoder
  classifier end to end, saved for the ``hf`` adapter.
"""
