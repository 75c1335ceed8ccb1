import numpy as np
import pytest

from alseg.core.errors import ConfigError, DataError
from alseg.datasets.normalization import (
    SAMPLES_PER_CASE,
    channel_schemes,
    check_normalization,
    fit_normalizer,
    foreground_sample,
    nonzero_statistics,
)


def _mri():
    rng = np.random.default_rng(0)
    image = np.zeros((2, 6, 6, 4), np.float32)
    image[0, 1:5, 1:5, 1:3] = rng.uniform(100, 200, (4, 4, 2))
    image[1, 2:4, 2:4, :] = rng.uniform(1, 3, (2, 2, 4))
    return image


def test_nonzero_zscore_per_channel_and_case_also_on_slices():
    image = _mri()
    normalizer = fit_normalizer(("nonzero_zscore",) * 2, ("flair", "t1"), [])
    statistics = nonzero_statistics(image)
    normalised = normalizer(image, statistics)
    assert normalised.dtype == np.float32
    for channel in range(2):
        brain = image[channel] != 0
        values = image[channel][brain]
        np.testing.assert_allclose(normalised[channel][brain], (values - values.mean()) / values.std(), rtol=1e-5)
        assert (normalised[channel][~brain] == 0).all()
    # A slice read on its own is normalised with the statistics of its whole case.
    np.testing.assert_array_equal(normalizer(image[..., 2], statistics), normalised[..., 2])


def test_nonzero_statistics_never_divide_by_zero():
    image = np.zeros((2, 3, 3, 3), np.float32)
    image[1, 0, 0, 0] = image[1, 1, 1, 1] = 5.0
    assert nonzero_statistics(image) == ((0.0, 1.0), (5.0, 1.0))


def _ct_samples():
    rng = np.random.default_rng(1)
    return [rng.normal(40, 30, (1, SAMPLES_PER_CASE)).astype(np.float32) for _ in range(3)]


def test_ct_is_clipped_to_foreground_percentiles_then_z_scored():
    samples = _ct_samples()
    normalizer = fit_normalizer(("ct",), ("CT",), samples)
    pooled = np.concatenate(samples, axis=1)[0].astype(np.float64)
    (stats,) = normalizer.ct
    np.testing.assert_allclose([stats.lower, stats.upper], np.percentile(pooled, [0.5, 99.5]), rtol=1e-5)
    np.testing.assert_allclose([stats.mean, stats.std], [pooled.mean(), pooled.std()], rtol=1e-5)
    image = np.array([-1000.0, 0.0, 40.0, 3000.0], np.float32).reshape(1, 4, 1, 1)
    normalised = normalizer(image, nonzero_statistics(image))[0, :, 0, 0]
    expected = (np.array([stats.lower, 0.0, 40.0, stats.upper]) - stats.mean) / stats.std
    np.testing.assert_allclose(normalised, expected, rtol=1e-5)
    assert normalised[1] != 0  # 0 HU (water) is tissue, not a hole


def test_channels_follow_their_own_scheme():
    image = np.stack([_mri()[0], np.full((6, 6, 4), 40.0, np.float32)])
    normalizer = fit_normalizer(("nonzero_zscore", "ct"), ("T2", "CT"), [sample[[0, 0]] for sample in _ct_samples()])
    assert normalizer.ct[0] is None and normalizer.ct[1] is not None
    normalised = normalizer(image, nonzero_statistics(image))
    brain = image[0] != 0
    values = image[0][brain]
    np.testing.assert_allclose(normalised[0][brain], (values - values.mean()) / values.std(), rtol=1e-5)
    assert (normalised[0][~brain] == 0).all()
    np.testing.assert_allclose(normalised[1], (40.0 - normalizer.ct[1].mean) / normalizer.ct[1].std, rtol=1e-5)


def test_foreground_sample_is_seeded_and_drawn_from_foreground_only():
    image = np.arange(2 * 4 * 4 * 2, dtype=np.float32).reshape(2, 4, 4, 2)
    foreground = np.zeros((4, 4, 2), bool)
    foreground[1:3, 1:3, 1] = True
    sample = foreground_sample(image, foreground)
    assert sample.shape == (2, SAMPLES_PER_CASE) and sample.dtype == np.float32
    for channel in range(2):
        assert set(sample[channel].tolist()) == set(image[channel][foreground].tolist())
    np.testing.assert_array_equal(foreground_sample(image, foreground), sample)
    assert foreground_sample(image, np.zeros_like(foreground)).shape == (2, 0)


def test_ct_without_training_foreground_is_a_data_error():
    with pytest.raises(DataError, match=r"CT normalisation of channel 'CT' needs foreground .* none of the 2 training"):
        fit_normalizer(("ct",), ("CT",), [np.empty((1, 0), np.float32)] * 2)


def test_auto_follows_modality_names_and_options_are_checked():
    assert channel_schemes("auto", ("CT",)) == ("ct",)
    assert channel_schemes("auto", ("FLAIR", "t1", "ct")) == ("nonzero_zscore", "nonzero_zscore", "ct")
    assert channel_schemes("ct", ("flair", "t1")) == ("ct", "ct")
    assert channel_schemes("nonzero_zscore", ("CT",)) == ("nonzero_zscore",)
    with pytest.raises(
        ConfigError,
        match=r"The 'normalization' option .* must be one of auto, ct, nonzero_zscore\. Got 'minmax'\.",
    ):
        check_normalization("minmax")
