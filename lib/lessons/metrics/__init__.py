"""Lesson: distance metrics (cosine, L2 and inner product in numpy and in Postgres, with the
traps).
"""
