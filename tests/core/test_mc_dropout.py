import pytest
import torch
from monai.networks.blocks import Convolution
from monai.networks.nets import UNet
from torch import nn

from alseg.core.errors import ConfigError, PluginError
from alseg.core.mc_dropout import has_dropout, mc_dropout


def _bn_dropout_net() -> nn.Module:
    return nn.Sequential(
        nn.Conv2d(1, 4, 3, padding=1),
        nn.BatchNorm2d(4),
        nn.ReLU(),
        nn.Dropout2d(0.5),
        nn.Conv2d(4, 2, 1),
        nn.Dropout(0.5),
    )


def _flags(module: nn.Module) -> list[bool]:
    return [m.training for m in module.modules()]


def test_samples_differ_inside_and_agree_outside():
    torch.manual_seed(0)
    model = _bn_dropout_net().eval()
    x = torch.randn(2, 1, 8, 8)
    with torch.inference_mode():
        with mc_dropout(model):
            a, b = model(x), model(x)
        c, d = model(x), model(x)
    assert not torch.allclose(a, b)
    assert torch.equal(c, d)


def test_batchnorm_statistics_and_mode_untouched():
    torch.manual_seed(0)
    model = _bn_dropout_net().eval()
    bn = model[1]
    # Non-trivial running statistics, so batch-statistics mode would change the output and stats.
    bn.running_mean.fill_(0.3)
    bn.running_var.fill_(2.0)
    before = {k: v.clone() for k, v in bn.state_dict().items()}
    with mc_dropout(model):
        assert not bn.training
        assert model[3].training and model[5].training
        for _ in range(3):
            model(torch.randn(4, 1, 8, 8) * 5 + 2)
    for key, value in bn.state_dict().items():
        assert torch.equal(value, before[key]), key


def test_exact_mixed_modes_restored():
    model = _bn_dropout_net()
    model.train()
    model[1].eval()  # BatchNorm eval
    model[5].eval()  # one dropout eval, the other train
    model[0].train()
    before = _flags(model)
    with mc_dropout(model):
        assert model[5].training and model[3].training
        assert not model[1].training
    assert _flags(model) == before
    assert before != [True] * len(before)  # the prior modes really were mixed


def test_restored_on_exception():
    model = _bn_dropout_net().eval()
    before = _flags(model)
    with pytest.raises(RuntimeError, match="boom"), mc_dropout(model):
        assert model[3].training
        raise RuntimeError("boom")
    assert _flags(model) == before


def test_dropout3d_nested_in_monai_block_is_switched():
    block = Convolution(3, 1, 2, dropout=0.5, dropout_dim=3, norm="batch").eval()
    dropout3d = block.adn.D
    assert isinstance(dropout3d, nn.Dropout3d)
    with mc_dropout(block):
        assert dropout3d.training
        assert not block.adn.N.training
    assert not dropout3d.training


def test_monai_unet_samples_differ():
    torch.manual_seed(0)
    net = UNet(3, 1, 2, channels=(4, 8), strides=(2,), dropout=0.3).eval()
    x = torch.randn(1, 1, 8, 8, 8)
    with torch.inference_mode(), mc_dropout(net):
        assert not torch.allclose(net(x), net(x))
    assert not any(m.training for m in net.modules())


def test_no_dropout_raises_plugin_error_and_changes_nothing():
    model = nn.Sequential(nn.Conv2d(1, 2, 3), nn.BatchNorm2d(2)).eval()
    assert not has_dropout(model)
    with (
        pytest.raises(PluginError, match=r"Sequential.*no dropout layer.*BALD would be 0"),
        mc_dropout(model),
    ):
        pass  # pragma: no cover
    assert not any(m.training for m in model.modules())


def test_dropout_probability_0_everywhere_raises_config_error_and_changes_nothing():
    model = nn.Sequential(nn.Conv2d(1, 2, 3), nn.Dropout2d(0.0), nn.Sequential(nn.Dropout(0.0))).eval()
    with (
        pytest.raises(
            ConfigError, match=r"dropout probability of the model Sequential must be > 0.*Got p = 0 in all 2"
        ),
        mc_dropout(model),
    ):
        pass  # pragma: no cover
    assert not any(m.training for m in model.modules())


def test_one_dropout_layer_with_probability_above_0_is_enough():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.Dropout(0.0), nn.Dropout2d(0.5)).eval()
    x = torch.randn(2, 1, 8, 8)
    with torch.inference_mode(), mc_dropout(model):
        assert not torch.allclose(model(x), model(x))


def test_has_dropout_finds_alpha_dropout():
    assert has_dropout(nn.Sequential(nn.Linear(2, 2), nn.Sequential(nn.FeatureAlphaDropout(0.1))))
    assert has_dropout(_bn_dropout_net())
