"""The campaign configuration: schema and validation, the systems, what the settings make of a
campaign, and what may not change once it runs.
"""
