"""Lesson: filtered search (WHERE with an approximate index, iterative scans, partial indexes)."""
