"""Judging the ensemble: the test set, held-out truth at the exploration conditions, statistics
with intervals, convergence.
"""
