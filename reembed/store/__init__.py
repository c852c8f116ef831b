"""The store layer: MongoDB (families, sources, the ledger, versions, aliases, golden
queries, beat's tick) and Chroma (the sink). It imports no other layer.
"""
