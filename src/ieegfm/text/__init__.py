"""Language side of the heads: sentence embeddings (``embed``), the candidate bank (``bank``), sentence and word
events read from the shards (``sentences``, ``continuations``), the frozen causal LM (``llm``), and the optional
vec2text inversion (``vec2text_shim``, never imported unless asked for).

Nothing here is imported by ``import ieegfm``; each module is imported where it is used.
"""
