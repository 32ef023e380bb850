"""Which explored frames are labeled: acceptance by uncertainty, spread over walkers and time,
audit frames.
"""
