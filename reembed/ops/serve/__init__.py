"""``reembed serve``: the HTTP API for readers in any language.

Readers outside Python must embed their queries with the active version's own
config, or they search an index with the wrong model. This service does it for
them: ``POST /v1/embeddings`` speaks OpenAI's embeddings API, with a family
(its active version) or ``family@version`` as the model, so any OpenAI client
(the ``openai`` npm package, LangChain's ``OpenAIEmbeddings``) gets vectors
from the index's own model; ``POST /v1/families/{family}/query`` answers with
hits joined to their source documents. Every route but ``/healthz`` needs the
bearer token ``REEMBED_SERVE_TOKEN``; nothing is written unless the service
was started with ``--allow-writes``.

One module per concept: :mod:`.app` (the application, auth and errors),
:mod:`.embeddings` (the OpenAI-compatible endpoint), :mod:`.families`
(families, versions and queries), :mod:`.metrics` (Prometheus text).
"""
