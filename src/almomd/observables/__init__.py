"""Observables of MD: what a potential is for, measured and compared with reference dynamics."""
