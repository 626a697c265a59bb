"""Bundled corpora and synthetic language pairs (see :mod:`simulpo.data.synthetic`)."""
