"""Lesson: recall at scale (the exact scan against HNSW and IVFFlat as the table grows, and
your own table).
"""
