"""The bundled exchange simulator: a fake futures exchange for running and testing the guard.

It is its own program (``python -m simulator --scenario FILE``) on the other side of the wire:
it never imports ``app`` and the guard never imports it. It serves two exchange faces from one
in-memory account model, plus a control API under ``/_sim`` that tests use to change state and
inject faults. See ``simulator/README.md``.
"""
