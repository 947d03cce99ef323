"""Feature inversion's default regulariser grows with depth, as in Mahendran & Vedaldi."""
from tinycnn.models import cifar10_net, squeezenet1_1
from vis.feature_inversion import TV_DEEP, tv_weight_for


def test_tv_weight_grows_with_depth():
    for net, layers in [(squeezenet1_1(weights=False), ["relu1", "fire2", "fire3.expand", "fire5", "fire7", "fire9"]),
                        (cifar10_net(weights=False), ["relu1", "relu2", "relu4", "relu6"])]:
        weights = [tv_weight_for(net, layer) for layer in layers]
        assert weights == sorted(weights) and weights[0] < weights[-1] == TV_DEEP
