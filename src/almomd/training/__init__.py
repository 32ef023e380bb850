"""Training ensemble members with NequIP: the rendered training config, nequip-train and
nequip-package in one process, compiled members.
"""
