"""alseg.datasets: reference data modules of alseg and synthetic data.

Data modules: :class:`~alseg.datasets.brats.BraTSDataModule` (``brats``),
:class:`~alseg.datasets.decathlon.DecathlonDataModule` (``decathlon``),
:class:`~alseg.datasets.image_folder.ImageFolderDataModule` (``image_folder``) and
:class:`~alseg.datasets.bcss.BCSSDataModule` (``bcss``). Commands: ``alseg-make-data``
(:mod:`~alseg.datasets.make_data`) and ``alseg-predict`` (:mod:`~alseg.datasets.predict`).
"""
