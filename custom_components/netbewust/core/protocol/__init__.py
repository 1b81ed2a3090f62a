"""Community membership protocol.

The versioned message schema both ends share, and the household's session.
"""
