"""Test-time-scaling shapes as teams: the :class:`Beam` and :class:`Cascade` strategies and
:func:`shape`, which builds any team from a spec.
"""
