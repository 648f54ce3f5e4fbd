"""Measurement shared by the lessons: recall against the exact scan (no labels needed) and its
stored ground truths, the size jobs that prepare a table with its truth, and the evals
harness (labelled queries from the corpus, and their metrics).
"""
