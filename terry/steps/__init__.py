"""The pipeline's steps, one object per step, each in the module named after it:

diagnose → propose → dry_run → gate → review → apply → verify → (rollback) → record

Each step is given the ``Context`` and the other steps it hands work to; none inherits from
another or reaches into another's private names. ``terry.pipeline`` only sequences them.
"""
