"""Model selection without target labels: DEV's risk on hand-checkable cases, the density
ratio, and strict grids."""

import numpy as np
import pytest

from shiftbench.errors import ShiftbenchError
from shiftbench.mitigate.options import GRID_CAP, parse_grid
from shiftbench.mitigate.selection import density_ratio, dev_risk
from shiftbench.train.mitigations import DANN


def test_dev_with_constant_weights_is_the_mean_loss() -> None:
    losses = np.array([0.2, 1.0, 0.6, 3.0])
    assert dev_risk(np.ones(4), losses) == pytest.approx(losses.mean())


def test_dev_with_a_constant_loss_is_that_loss_whatever_the_weights() -> None:
    # w*l = c*w, so eta = -c and the control variate cancels mean(w): DEV = c
    assert dev_risk(np.array([0.5, 3.0, 1.5, 0.1]), np.full(4, 0.7)) == pytest.approx(0.7)


def test_dev_by_hand() -> None:
    # w = [1, 3], l = [2, 0]: w*l = [2, 0], mean 1; mean(w) = 2; Cov(wl, w) = -2,
    # Var(w) = 2 (both n - 1): eta = 1, DEV = 1 + 1 * 2 - 1 = 2
    assert dev_risk(np.array([1.0, 3.0]), np.array([2.0, 0.0])) == pytest.approx(2.0)


def test_the_density_ratio_is_about_one_without_a_shift_and_grows_towards_the_target() -> None:
    rng = np.random.default_rng(0)
    source, target, rows = (rng.normal(size=(n, 3)) for n in (400, 200, 300))
    weights = density_ratio(source, target, rows, seed=0)
    assert abs(weights.mean() - 1) < 0.2
    shifted = density_ratio(source, target + 2.0, np.array([[0.0] * 3, [2.0] * 3]), seed=0)
    assert shifted[1] > 10 * shifted[0]


def test_a_grid_is_the_product_of_its_values_converted_strictly() -> None:
    combos = parse_grid(DANN, ["penalty=0.5,1", "lr=0.001,0.01,0.1"], ["hidden=8"])
    assert len(combos) == 6
    assert combos[0] == ({"penalty": 0.5}, {"lr": 0.001})
    assert combos[-1] == ({"penalty": 1.0}, {"lr": 0.1})
    assert parse_grid(DANN, [], []) == [({}, {})]


@pytest.mark.parametrize("grid, fixed, message", [
    (["penalty=a,1"], [], "--grid penalty='a': must be a finite number"),
    (["penalti=1,2"], [], "did you mean 'penalty'"),
    (["penalty=1,2"], ["penalty=3"], "given twice"),
    (["lr=1,2", "lr=3"], [], "given twice"),
    (["penalty=1,1"], [], "repeated"),
    (["val_fraction=0.1,0.2"], [], "cannot be searched"),
    (["lr"], [], "name=value1,value2"),
    ([f"lr={','.join(str(k + 1) for k in range(9))}",
      f"penalty={','.join(str(k) for k in range(8))}"], [], f"at most {GRID_CAP}"),
])
def test_bad_grids_are_one_line_errors(grid: list[str], fixed: list[str], message: str) -> None:
    with pytest.raises(ShiftbenchError, match=message):
        parse_grid(DANN, grid, fixed)
