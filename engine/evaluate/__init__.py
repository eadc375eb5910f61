"""Evaluation: metrics, KPI gates, decision threshold, fairness, selection and the model card.

Stages: :func:`engine.evaluate.stage.evaluate` and :func:`engine.evaluate.stage.select`.
"""
