"""AutocastOptimWrapper: the forward pass, or named submodules of it, in
bf16 autocast."""
import pytest
import torch
from torch import nn

from ailurus_mm.engine.optim import AutocastOptimWrapper


def test_whole_forward_runs_in_bf16():
    model = nn.Linear(4, 2)
    wrapper = AutocastOptimWrapper(
        optimizer=torch.optim.SGD(model.parameters(), lr=0.1))
    with wrapper.optim_context(model):
        assert model(torch.randn(3, 4)).dtype == torch.bfloat16
    assert model(torch.randn(3, 4)).dtype == torch.float32


def test_autocast_modules_run_in_bf16_and_hand_on_fp32():
    torch.manual_seed(0)
    model = nn.Sequential()
    model.add_module('net', nn.Sequential(nn.Linear(4, 4), nn.ReLU()))
    model.add_module('head', nn.Linear(4, 2))
    dtypes = {}
    for name in ('net.0', 'net', 'head'):
        model.get_submodule(name).register_forward_hook(
            lambda module, inputs, output, name=name: dtypes.update(
                {name: (inputs[0].dtype, output.dtype)}))
    wrapper = AutocastOptimWrapper(
        optimizer=torch.optim.SGD(model.parameters(), lr=0.1),
        autocast_modules=['net'])
    with wrapper.optim_context(model):
        output = model(torch.randn(3, 4))
    assert dtypes == {'net.0': (torch.float32, torch.bfloat16),
                      'net': (torch.float32, torch.float32),
                      'head': (torch.float32, torch.float32)}
    output.sum().backward()
    assert model.net[0].weight.grad.dtype == torch.float32
    # the class's forward is back
    assert 'forward' not in vars(model.net)
    dtypes.clear()
    model(torch.randn(3, 4))
    assert dtypes['net.0'] == (torch.float32, torch.float32)


def test_autocast_modules_must_exist():
    model = nn.Sequential(nn.Linear(4, 4))
    wrapper = AutocastOptimWrapper(
        optimizer=torch.optim.SGD(model.parameters(), lr=0.1),
        autocast_modules=['backbone'])
    with pytest.raises(ValueError, match="names 'backbone', which "
                       'Sequential does not have'):
        with wrapper.optim_context(model):
            pass
    with pytest.raises(TypeError, match='sequence of names'):
        AutocastOptimWrapper(
            optimizer=torch.optim.SGD(model.parameters(), lr=0.1),
            autocast_modules='backbone')


def test_an_instance_forward_is_restored():
    model = nn.Sequential(nn.Linear(4, 4))
    layer = model[0]
    calls = []

    def forward(x):
        calls.append(x.dtype)
        return nn.Linear.forward(layer, x)

    layer.forward = forward
    wrapper = AutocastOptimWrapper(
        optimizer=torch.optim.SGD(model.parameters(), lr=0.1),
        autocast_modules=['0', '0'])  # twice: nested, restored in order
    with wrapper.optim_context(model):
        assert model(torch.randn(3, 4)).dtype == torch.float32
    assert layer.forward is forward
    assert calls == [torch.float32]
