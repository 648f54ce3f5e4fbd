"""Lesson: re-embedding (the mixed-models trap and its guard, a live zero-downtime migration
to another model under a stream of queries, before and after, and drift you can watch).
"""
