"""Models at rest: registry names, aliases and versions, the champion loader and cache, the serving runtimes and pyfunc wrappers.

Serving, monitoring, batch scoring, training and the CLI load models only through this room;
it imports nothing of ours but ``tenure`` (settings and small helpers).
"""
