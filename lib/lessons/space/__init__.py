"""Lesson: embedding space (a 2-D map of real embeddings, and the query a dropped point makes)."""
