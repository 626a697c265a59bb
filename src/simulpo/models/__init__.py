"""Causal LMs and tokenizers: the tiny embedded default trained from scratch, or any local HF model."""
