"""Labeled frames on disk: extxyz I/O with provenance, data sets, readers
of data people already have.
"""
