"""MLIP molecular dynamics with the ensemble: exploration walkers and production MD."""
