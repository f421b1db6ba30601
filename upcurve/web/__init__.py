"""The web app and the HTTP API, served from a workspace: every page and every answer reads what runs kept, and
nothing is recomputed on a request.

A home for the capability, at the top of the layers beside the command line: it calls the use cases and reads the
workspace, never the engine directly.
"""
