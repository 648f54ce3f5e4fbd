"""Measurement shared by the lessons: recall against the exact scan (no labels needed) and its
stored ground truths.
"""
