"""The application shell: the ``citybrain`` command line that ties brain, streams and dashboards together.

It is the one place allowed to import every layer (brain, streams, dashboards, models).
"""
__version__ = "0.1.0"
