"""The read path: :class:`~reembed.read.retriever.Retriever` (version-matched
queries joined to their source documents), ``query`` and ``ContextManager``.
"""
