"""Evaluation measures for conditional models: the paper's Table 2 (pairs add their own measures).

- :mod:`cmmkit.evaluation.parzen` -- the Parzen-window log-likelihood of §4.4, with σ chosen on
  validation (kept for parity with the paper; see ``PARZEN_NOTE`` for why not to trust it alone);
- :mod:`cmmkit.evaluation.auc` -- ROC AUC per named dimension of y, for pair measures that score
  whether generated x show the condition they were generated from;
- :mod:`cmmkit.evaluation.evaluate` -- ``cmmkit evaluate``, which runs them all on a trained run.

Submodules are imported on use so that importing this package stays cheap.
"""

#: The file ``cmmkit evaluate`` writes into the run folder and ``cmmkit report`` reads.
EVAL_FILE = "eval.json"
