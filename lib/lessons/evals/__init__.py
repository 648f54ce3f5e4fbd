"""Lesson: evals (labelled queries made from the corpus, metrics with intervals, the link to
recall, and a regression you can see).
"""
