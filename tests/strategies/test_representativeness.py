"""Representativeness strategies: the three score sources and their updates after every pick, the uncertainty term,
features (PCA, pooled images), seeds and bad options."""

import pytest
import torch
from sklearn.decomposition import PCA

from alseg.core import ConfigError, PluginError
from alseg.core.query_view import QueryView
from alseg.core.testing import InMemoryDataModule, TinySegmentationModel
from alseg.strategies.entropy import EntropyStrategy
from alseg.strategies.representativeness import RepresentativenessStrategy, UncertaintyRepresentativenessStrategy
from alseg.strategies.representativeness_features import pooled_images, project
from alseg.strategies.representativeness_scores import DistanceScores, GroupScores, greedy_select, min_max


def bound(model=None, **data):
    data_module = InMemoryDataModule(**data)
    model = model or TinySegmentationModel()
    torch.manual_seed(0)
    model.bind_data(data_module)
    return model, data_module


def in_order(n):
    """The tie-break ranks of ``n`` pool rows without shuffling: row i is i-th."""
    return torch.arange(n)


def tensor(rows):
    return torch.tensor(rows, dtype=torch.float32)


# -------------------------------------------------------------------------------------------------------- distance
@pytest.mark.parametrize("aggregation", ["mean", "min"])
def test_every_distance_pick_counts_as_labelled_for_the_next(aggregation):
    """Two tight clusters far from the labelled item: the second pick must come from the other cluster."""
    near_x = [[10.0, 0.0], [10.1, 0.0], [10.0, 0.1]]  # rows 0-2
    near_y = [[0.0, 10.5], [0.1, 10.5], [0.0, 10.6]]  # rows 3-5, a little farther from the origin
    features = tensor([*near_x, *near_y, [0.0, 0.0]])  # row 6 is labelled
    labelled = torch.arange(7) == 6
    source = DistanceScores(features, labelled, "euclidean", aggregation, chunk_size=2)
    picks = greedy_select(2, in_order(6), None, source, weight=0.0)
    assert picks[0] in (3, 4, 5) and picks[1] in (0, 1, 2)


@pytest.mark.parametrize("metric", ["euclidean", "cosine"])
@pytest.mark.parametrize("aggregation", ["mean", "min"])
def test_running_distances_equal_the_brute_force_ones(metric, aggregation):
    generator = torch.Generator().manual_seed(0)
    features = torch.randn(11, 5, generator=generator)
    labelled = torch.zeros(11, dtype=torch.bool)
    labelled[[2, 7]] = True
    source = DistanceScores(features, labelled, metric, aggregation, chunk_size=3)
    source.add(4)
    centres = features[[2, 7, 4]]
    if metric == "cosine":
        unit = torch.nn.functional.normalize
        distances = 1 - unit(features, dim=1) @ unit(centres, dim=1).T
    else:
        distances = torch.cdist(features, centres)
    expected = distances.mean(dim=1) if aggregation == "mean" else distances.amin(dim=1)
    assert torch.allclose(source.scores(), expected.double(), atol=1e-5)


def test_without_labelled_items_every_distance_is_zero_and_the_seed_decides():
    source = DistanceScores(torch.randn(4, 3), torch.zeros(4, dtype=torch.bool), "euclidean", "mean", 4)
    assert torch.equal(source.scores(), torch.zeros(4, dtype=torch.float64))
    assert greedy_select(1, torch.tensor([2, 0, 3, 1]), None, source, weight=0.0) == [1]


@pytest.mark.parametrize(("metric", "expected"), [("euclidean", 0), ("cosine", 1)])
def test_euclidean_and_cosine_distances_pick_differently(metric, expected):
    """Row 0 lies in the labelled item's direction but far away; row 1 is near it but at a right angle."""
    features = tensor([[10.0, 0.0], [0.0, 1.0], [1.0, 0.0]])
    source = DistanceScores(features, torch.tensor([False, False, True]), metric, "mean", 4)
    assert greedy_select(1, in_order(2), None, source, weight=0.0) == [expected]


# ------------------------------------------------------------------------------------------------ clusters, cases
def test_a_picked_item_counts_as_labelled_in_its_cluster():
    """Cluster 0: 4 pool + 2 labelled rows (4/6 unlabelled); cluster 1: 4 pool + 1 labelled row (4/5)."""
    groups = torch.tensor([0, 0, 0, 0, 1, 1, 1, 1, 0, 0, 1])
    labelled = torch.arange(11) >= 8
    source = GroupScores(groups, labelled)
    assert torch.allclose(source.scores()[:8], torch.tensor([4 / 6] * 4 + [4 / 5] * 4, dtype=torch.float64))
    picks = greedy_select(4, in_order(8), None, source, weight=0.0)
    assert [int(groups[i]) for i in picks] == [1, 0, 1, 0]  # 4/5 > 4/6 > 3/5 > 3/6 > 2/5


class CaseEmbeddings(TinySegmentationModel):
    """Embeds the slices of each case near one corner of a square: four well-separated blobs."""

    def embedding_step(self, batch, batch_idx):
        corners = torch.tensor([[0.0, 0.0], [20.0, 0.0], [0.0, 20.0], [20.0, 20.0]])
        return torch.stack(
            [
                corners[int(case.removeprefix("case_"))] + 0.01 * int(item.split(":")[1])
                for case, item in zip(batch["case_id"], batch["id"], strict=True)
            ]
        )


@pytest.mark.parametrize(
    "options", [{"clustering": "kmeans", "clusters": 4}, {"clustering": "mean_shift", "bandwidth": 5.0}]
)
def test_clusters_of_the_cases_select_as_the_cases_do(options):
    model, data = bound(model=CaseEmbeddings())  # 4 training cases of 6 slices
    view = QueryView(data)
    by_cluster, _ = RepresentativenessStrategy(method="clustering", **options).select_items_to_label(
        model, view, 12, seed=3
    )
    by_case, _ = RepresentativenessStrategy(method="cases").select_items_to_label(model, QueryView(data), 12, seed=3)
    assert view.notes == {"clusters": 4}
    assert by_cluster == by_case


def test_each_pick_comes_from_the_case_with_the_lowest_labelled_fraction():
    model, data = bound(model=TinySegmentationModel(), initial_training_set_size=5)
    taken = {f"case_{c}": 0 for c in range(4)}
    for item in data.training_ids:
        taken[item.split(":")[0]] += 1
    assert len(set(taken.values())) > 1  # the initial labelled set is uneven
    picked, _ = RepresentativenessStrategy(method="cases").select_items_to_label(model, QueryView(data), 15, seed=0)
    for item in picked:
        case = item.split(":")[0]
        open_cases = [c for c, n in taken.items() if n < 6]
        assert taken[case] == min(taken[c] for c in open_cases), (item, taken)
        taken[case] += 1


class Unusable(TinySegmentationModel):
    def predict_step(self, batch, batch_idx, dataloader_idx=0):
        raise AssertionError("the model ran")

    def embedding_step(self, batch, batch_idx):
        raise AssertionError("the model ran")


@pytest.mark.parametrize(
    "options",
    [{"method": "cases"}, {"features": "image"}, {"method": "clustering", "clusters": 3, "features": "image"}],
)
def test_cases_and_image_features_run_no_model(options):
    model, data = bound(model=Unusable())
    picked, _ = RepresentativenessStrategy(**options).select_items_to_label(model, QueryView(data), 3, seed=0)
    assert len(set(picked)) == 3 and set(picked) <= set(data.unlabeled_ids())


# ----------------------------------------------------------------------------------------------------- uncertainty
def test_min_max_of_a_constant_vector_is_zero_and_scales_only_the_candidates():
    everything = torch.ones(4, dtype=torch.bool)
    assert torch.equal(min_max(torch.full((4,), 3.0), everything), torch.zeros(4, dtype=torch.float64))
    scaled = min_max(torch.tensor([100.0, 5.0, 10.0, 7.5]), torch.tensor([False, True, True, True]))
    assert torch.equal(scaled, torch.tensor([0.0, 0.0, 1.0, 0.5], dtype=torch.float64))


def test_the_uncertainty_term_favours_uncertain_items():
    constant = GroupScores(torch.zeros(3, dtype=torch.long), torch.zeros(3, dtype=torch.bool))
    assert greedy_select(3, in_order(3), torch.tensor([0.1, 0.9, 0.5]), constant, weight=0.5) == [1, 2, 0]


class Counting(TinySegmentationModel):
    """Counts its predictions."""

    def __init__(self):
        super().__init__()
        self.predictions = 0

    def predict_step(self, batch, batch_idx, dataloader_idx=0):
        self.predictions += 1
        return super().predict_step(batch, batch_idx, dataloader_idx)


class UncertainAboutOne(Counting):
    """Confident background everywhere but on one slice (if any), where it predicts 0.5."""

    def __init__(self, target=None):
        super().__init__()
        self.target = target

    def predict_step(self, batch, batch_idx, dataloader_idx=0):
        super().predict_step(batch, batch_idx, dataloader_idx)
        probabilities = torch.tensor([0.99, 0.01])[None, :, None, None].repeat(len(batch["id"]), 1, 16, 16)
        for row, item in enumerate(batch["id"]):
            if item == self.target:
                probabilities[row] = 0.5
        return probabilities


@pytest.mark.parametrize("weight", [1.0, 0.6])
def test_the_most_uncertain_item_is_picked_first(weight):
    target = sorted(InMemoryDataModule().unlabeled_ids())[-1]  # last in id order
    model, data = bound(model=UncertainAboutOne(target))
    strategy = UncertaintyRepresentativenessStrategy(uncertainty_weight=weight)
    picked, _ = strategy.select_items_to_label(model, QueryView(data), 3, seed=0)
    assert picked[0] == target
    assert model.predictions == len(data.unlabeled_dataloader())  # one pass over the pool, not one per pick


def test_weight_1_ranks_as_entropy_does():
    model, data = bound(model=Counting())
    entropy, _ = EntropyStrategy().select_items_to_label(model, QueryView(data), 6, seed=5)
    strategy = UncertaintyRepresentativenessStrategy(uncertainty_weight=1.0, features="model")
    assert strategy.select_items_to_label(model, QueryView(data), 6, seed=5)[0] == entropy


@pytest.mark.parametrize("strategy", [RepresentativenessStrategy(), UncertaintyRepresentativenessStrategy(0.0)])
def test_without_uncertainty_no_prediction_runs(strategy):
    model, data = bound(model=Counting())
    strategy.select_items_to_label(model, QueryView(data), 3)
    assert model.predictions == 0


# -------------------------------------------------------------------------------------------------------- features
def test_pca_projects_the_vectors_it_was_fitted_on():
    generator = torch.Generator().manual_seed(1)
    features = torch.randn(20, 6, generator=generator) * torch.tensor([1.0, 10.0, 0.1, 5.0, 1.0, 50.0])
    projected = project(features, 3, seed=4)
    expected = PCA(n_components=3, random_state=4).fit_transform(features.double().numpy())
    assert torch.allclose(projected, torch.from_numpy(expected).float(), atol=1e-4)
    low, high = features.amin(dim=0), features.amax(dim=0)
    fitted_on_normalised = PCA(n_components=3, random_state=4).fit(((features - low) / (high - low)).double().numpy())
    wrong = fitted_on_normalised.transform(features.double().numpy())  # the original's projection
    assert not torch.allclose(projected, torch.from_numpy(wrong).float(), atol=1e-2)


@pytest.mark.parametrize(("shape", "size", "length"), [((2, 3, 8, 8), 4, 48), ((2, 1, 8, 6, 4), 2, 8)])
def test_images_are_average_pooled_to_equal_length_vectors(shape, size, length):
    images = torch.arange(torch.Size(shape).numel(), dtype=torch.float32).reshape(shape)
    vectors = pooled_images(images, size)
    assert vectors.shape == (2, length)
    block = images[(0, 0, *(slice(0, n // size) for n in shape[2:]))]  # the first block of every spatial axis
    assert vectors[0, 0] == pytest.approx(block.mean().item())


def test_pooled_images_need_2d_or_3d_images():
    with pytest.raises(PluginError, match=r"2D or 3D images.*\(2, 3, 8\)"):
        pooled_images(torch.zeros(2, 3, 8), 4)


def test_pca_larger_than_the_features_names_both_numbers():
    model, data = bound()  # 20 pool + 4 labelled slices of 1 channel
    strategy = RepresentativenessStrategy(features="image", image_size=2, feature_dimensionality=5)
    with pytest.raises(ConfigError, match=r"'feature_dimensionality'.*feature vectors \(4\).*number \(24\)\. Got 5"):
        strategy.select_items_to_label(model, QueryView(data), 2)
    with pytest.raises(ConfigError, match=r"feature vectors \(8\) and their number \(3\)\. Got 4"):
        project(torch.randn(3, 8), 4, seed=0)


def test_more_clusters_than_items_is_a_config_error():
    model, data = bound()
    with pytest.raises(ConfigError, match=r"'clusters'.*\(24\)\. Got 30"):
        RepresentativenessStrategy(method="clustering", clusters=30).select_items_to_label(model, QueryView(data), 2)


# ------------------------------------------------------------------------------------------------- seeds, options
class ConstantEmbeddings(UncertainAboutOne):
    """Equal features and equal uncertainty for every item: every pick is a tie."""

    def embedding_step(self, batch, batch_idx):
        return torch.ones(len(batch["id"]), 3)


@pytest.mark.parametrize("strategy", [RepresentativenessStrategy, UncertaintyRepresentativenessStrategy])
def test_ties_are_broken_by_the_seed(strategy):
    model, data = bound(model=ConstantEmbeddings())
    picks = [tuple(strategy().select_items_to_label(model, QueryView(data), 3, seed=s)[0]) for s in (0, 0, 1, 2)]
    assert picks[0] == picks[1]
    assert len(set(picks)) == 3
    assert tuple(sorted(data.unlabeled_ids())[:3]) not in picks


@pytest.mark.parametrize(
    ("make", "fragment"),
    [
        (
            lambda: RepresentativenessStrategy(method="density"),
            r"'method'.*cases, clustering, distance\. Got 'density'",
        ),
        (lambda: RepresentativenessStrategy(features="pixels"), r"'features'.*image, model\. Got 'pixels'"),
        (lambda: RepresentativenessStrategy(metric="manhattan"), r"'metric'.*cosine, euclidean\. Got 'manhattan'"),
        (lambda: RepresentativenessStrategy(distance_aggregation="max"), r"'distance_aggregation'.*mean, min\."),
        (lambda: RepresentativenessStrategy(clustering="dbscan"), r"'clustering'.*kmeans, mean_shift\. Got 'dbscan'"),
        (lambda: RepresentativenessStrategy(clusters=0), r"'clusters'.*>= 1\. Got 0"),
        (lambda: RepresentativenessStrategy(image_size=0), r"'image_size'.*>= 1\. Got 0"),
        (lambda: RepresentativenessStrategy(feature_dimensionality=0), r"'feature_dimensionality'.*>= 1\. Got 0"),
        (lambda: RepresentativenessStrategy(chunk_size=0), r"'chunk_size'.*>= 1\. Got 0"),
        (lambda: RepresentativenessStrategy(bandwidth=0.0), r"'bandwidth'.*> 0.*Got 0\.0"),
        (lambda: UncertaintyRepresentativenessStrategy(uncertainty_weight=1.5), r"'uncertainty_weight'.*\[0, 1\]"),
        (lambda: UncertaintyRepresentativenessStrategy(uncertainty_weight=-0.1), r"'uncertainty_weight'.*-0\.1"),
        (lambda: UncertaintyRepresentativenessStrategy(uncertainty="margin"), r"'uncertainty'.*bald, entropy\."),
        (lambda: UncertaintyRepresentativenessStrategy(uncertainty="bald", mc_samples=1), r"'mc_samples'.*>= 2"),
        (lambda: UncertaintyRepresentativenessStrategy(metric="l1"), r"'metric'.*Got 'l1'"),
    ],
)
def test_bad_options(make, fragment):
    with pytest.raises(ConfigError, match=fragment):
        make()
