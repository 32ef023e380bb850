"""Labels from reference codes: named labelers (DFT codes, tblite, EMT, any ASE calculator) and
failure-tolerant single points.
"""
