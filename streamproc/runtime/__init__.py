"""The Faust app and its agents: wiring only.

Everything here imports :mod:`streamproc.pipeline` and below; nothing below imports this.
"""
