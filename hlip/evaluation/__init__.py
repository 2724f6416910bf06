"""Evaluation: benchmark adapters, zero-shot and linear-probe classification, retrieval, metrics with CIs, plots."""
