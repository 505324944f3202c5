"""Evaluation: the paper's Tables 1–2 and Figure 3 (augmentation strategies, classifier AUC,
inception score) plus FID/KID, label fidelity and a memorisation audit, as a stored report.

Entry points: :mod:`gdgan.evaluation.plan` (``EvaluationPlan``) and
:mod:`gdgan.evaluation.experiment` (``train_split_gans``, ``run_classifier``,
``assemble_report``, ``run_evaluation``).
"""
