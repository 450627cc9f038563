"""The ladder varies size, not kind: every rung's shape is the one rule's, and neighbours grow together."""

import math

import pytest

from sweep.config import compose
from sweep.train import ladder
from sweep.train.accounting import param_counts


def rungs():
    out = []
    for name in ladder.names():
        m = compose([f"model={name}"]).model
        out.append((ladder.nominal_params(name), name, m))
    return [r[1:] for r in sorted(out, key=lambda r: r[0])]


@pytest.mark.parametrize("name", ladder.names())
def test_every_rung_has_the_rule_s_shape(name):
    m = compose([f"model={name}"]).model
    assert (m.n_layer, m.d_model, m.n_head) == ladder.shape_for(ladder.nominal_params(name)), \
        f"configs/model/{name}.yaml is not the ladder rule's shape: regenerate it from ladder.shape_for"
    n = param_counts(m.n_layer, m.d_model, 0, 0)["non_embedding"]
    assert abs(n / ladder.nominal_params(name) - 1) <= ladder.NAME_TOLERANCE
    assert m.d_model % m.n_head == 0


@pytest.mark.slow
def test_neighbours_differ_in_size_not_kind():
    shapes = [(m.n_layer, m.d_model) for _, m in rungs()]
    assert len(shapes) >= 10
    for (l0, d0), (l1, d1) in zip(shapes, shapes[1:]):
        # where a rung gains a layer its width may step back (gpt-8k 1×26 → gpt-12k 2×22), by at most a fifth
        assert l1 >= l0 and (d1 >= d0 or (l1 > l0 and d1 >= 0.8 * d0)), \
            f"a rung shrinks in depth or width: {l0}x{d0} then {l1}x{d1}"
    ratios = [d / n for n, d in shapes if n > 1]  # one layer: the count alone sets the width (12-26 below 10k)
    assert all(abs(math.log(r / ladder.ASPECT)) < math.log(1.5) for r in ratios), ratios
    assert all(d <= 26 for n, d in shapes if n == 1)


def test_nominal_params_reads_the_name():
    assert ladder.nominal_params("gpt-25k") == 25_000
    assert ladder.nominal_params("gpt-100m") == 100e6
