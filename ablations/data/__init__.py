"""Corpus -> tokenizer -> instances by input format -> masking; each stage cached by a hash of its settings."""
