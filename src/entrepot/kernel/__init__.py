"""Kernel: the vocabulary every domain shares. Imports nothing from domains."""
