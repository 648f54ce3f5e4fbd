"""Lesson: hybrid search (full text and vectors fused in one SQL statement, BM25 three ways,
re-ranking and its cost), measured on the lab's labelled queries.
"""
