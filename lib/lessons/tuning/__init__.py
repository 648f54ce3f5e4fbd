"""Lesson: index tuning (the recall-latency frontier, quantization, why an index is not used)."""
