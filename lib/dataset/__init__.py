"""The recall tables' rows and tables, shared by the lessons that measure at scale: real
passages, the generator past them, loading, index builds and sizes.
"""
