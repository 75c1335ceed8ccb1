"""alseg.bench: benchmarks of query strategies on top of ``alseg-train``.

Modules: :mod:`~alseg.bench.cli` (the ``alseg-bench`` command), :mod:`~alseg.bench.grid` (the grid file and its
cells), :mod:`~alseg.bench.executors` (local processes or a SLURM job array), :mod:`~alseg.bench.ledgers` (the runs
of a benchmark folder), :mod:`~alseg.bench.curves` (learning-curve statistics), :mod:`~alseg.bench.statistics`
(the paired t-test, the pairwise penalty matrix, the bootstrap ranking), :mod:`~alseg.bench.summary` (per-strategy
and per-group statistics), :mod:`~alseg.bench.plots` (the figures), :mod:`~alseg.bench.report` (the
``alseg-report`` command) with :mod:`~alseg.bench.document` and :mod:`~alseg.bench.report_tables` (its text).
"""
