"""The reconciler as a channel: compares the worklist with what the PACS holds.

``config`` is the ``pacs_reconciler`` source model, ``passes`` the passes (a date window, a
study an MPPS reported, everything) and how their results are recorded, flagged and
notified, ``source`` the source that runs them on a schedule and after MPPS. Importing
:mod:`channels.reconciler.source` registers the type.
"""
