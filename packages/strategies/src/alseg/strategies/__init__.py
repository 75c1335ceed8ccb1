"""alseg.strategies: reference query strategies of alseg, each registered under a short name.

Strategies: :mod:`~alseg.strategies.random`, :mod:`~alseg.strategies.fg_random`, :mod:`~alseg.strategies.oracle_fg`
(oracle-informed), :mod:`~alseg.strategies.entropy` and :mod:`~alseg.strategies.bald` (with their power variants),
:mod:`~alseg.strategies.coreset`, :mod:`~alseg.strategies.interpolation` and
:mod:`~alseg.strategies.representativeness`. The layers they are built from: :mod:`~alseg.strategies.scoring`
(per-voxel maps and reductions), :mod:`~alseg.strategies.selection` and :mod:`~alseg.strategies.k_center` (pure,
seeded choice of ids).
"""
