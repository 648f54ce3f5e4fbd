"""The core every lesson stands on: the database, SQL rendering, the operator table, embeddings
and their cache, the corpus, the job queue, memory and versions.
"""
