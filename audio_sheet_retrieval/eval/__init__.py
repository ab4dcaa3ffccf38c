"""Evaluation: retrieval metrics, snippet retrieval, piece identification, reports."""
