"""The ``multitask`` method: auxiliary heads on label columns or the domain, fixed or
uncertainty weights (Kendall et al. 2018), PCGrad (Yu et al. 2020), and labels that don't
match refused."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch

from shiftbench.errors import ShiftbenchError
from shiftbench.testing import check_mitigation
from shiftbench.train.mitigations import Batch, MultiTask, StepOutput
from shiftbench.train.nets import HeadNet, project_conflicts
from shiftbench.train.trainer import TrainConfig, fit_features

IDS = [f"r{i}" for i in range(120)]
SMALL = TrainConfig(hidden=16, lr=1e-2, max_epochs=4, patience=4)


def rows() -> tuple[np.ndarray, list[str], list[str], np.ndarray]:
    """Features, the main label (feature 0's sign), an auxiliary one (feature 1's sign) and
    unlabelled target rows moved along feature 2."""
    rng = np.random.default_rng(0)
    x = rng.normal(size=(120, 4))
    target = rng.normal(size=(120, 4)) + [0, 0, 3, 0]
    return (x, [["neg", "pos"][int(v > 0)] for v in x[:, 0]],
            [["low", "high"][int(v > 0)] for v in x[:, 1]], target)


def test_uncertainty_weighting_is_kendalls_formula() -> None:
    method = MultiTask(tasks="domain").setup(HeadNet(4, 2, hidden=8), steps_per_epoch=1)
    s = method.modules_["log_variances"][0]
    with torch.no_grad():
        s.copy_(torch.tensor([0.5, -1.0]))
    losses = StepOutput({"classification": torch.tensor(2.0), "task_domain": torch.tensor(3.0)})
    expected = 2 / (2 * math.exp(0.5)) + 0.25 + 3 / (2 * math.exp(-1.0)) - 0.5
    assert float(method.objective(losses).detach()) == pytest.approx(expected, rel=1e-6)
    fixed = MultiTask(tasks="domain", weighting="fixed", weights="0.5").setup(
        HeadNet(4, 2, hidden=8), steps_per_epoch=1)
    assert float(fixed.objective(losses)) == pytest.approx(2 + 0.5 * 3)


def test_each_task_loss_falls_and_the_uncertainty_weights_move(tmp_path: Path) -> None:
    x, y, aux, target = rows()
    result = fit_features(x, y, IDS, tmp_path, MultiTask(tasks="topic,domain"), SMALL, target,
                          tasks={"topic": aux})
    steps = result.steps
    for name in ("classification", "task_topic", "task_domain"):
        first = np.mean([row[name] for row in steps[:3]])
        last = np.mean([row[name] for row in steps[-3:]])
        assert last < first, name
    for name in ("s_classification", "s_topic", "s_domain"):
        assert steps[0][name] == 0.0 and abs(steps[-1][name]) > 0.01, name


def test_fixed_weights_stay_put(tmp_path: Path) -> None:
    x, y, aux, _ = rows()
    result = fit_features(x, y, IDS, tmp_path, MultiTask(tasks="topic", weighting="fixed"),
                          SMALL, tasks={"topic": aux})
    assert all(row["s_topic"] == 0.0 for row in result.steps)


def test_pcgrad_projects_conflicting_gradients_as_the_formula_says() -> None:
    """g1=(1,0), g2=(-1,1) conflict (g1.g2 = -1): g1 -> g1 - (-1/2) g2 = (0.5, 0.5), which is
    orthogonal to g2; g2 -> g2 - (-1/1) g1 = (0, 1), orthogonal to g1; the sum (0.5, 1.5).
    Gradients that agree are summed unchanged."""
    g1, g2 = torch.tensor([1.0, 0.0]), torch.tensor([-1.0, 1.0])
    combined = project_conflicts(torch.stack([g1, g2]))
    assert torch.allclose(combined, torch.tensor([0.5, 1.5]))
    p1, p2 = g1 + 0.5 * g2, g2 + g1  # the projections, by the formula above
    assert float(p1 @ g2) == 0.0 and float(p2 @ g1) == 0.0
    assert torch.allclose(combined, p1 + p2)
    agreeing = torch.tensor([[1.0, 0.0], [1.0, 1.0]])
    assert torch.equal(project_conflicts(agreeing), torch.tensor([2.0, 1.0]))


def test_pcgrad_backward_projects_the_shared_layer_and_leaves_heads_their_own() -> None:
    """Main and auxiliary labels that disagree give conflicting gradients on the shared
    hidden layer: there the gradient is PCGrad's combination of the two tasks' gradients;
    the main classifier and the auxiliary head get their own task's gradient."""
    rng = np.random.default_rng(0)
    x = torch.tensor(rng.normal(size=(32, 4)), dtype=torch.float32)
    y = (x[:, 0] > 0).long()
    batch = Batch(x, y, tasks={"topic": 1 - y})
    torch.manual_seed(0)
    model = HeadNet(4, 2, hidden=8)
    method = MultiTask(tasks="topic", weighting="fixed", pcgrad=True).setup(
        model, steps_per_epoch=1, tasks={"topic": 2})
    head = method.modules_["head0"]
    with torch.no_grad():  # the same head for the opposite label: the tasks pull apart
        head.weight.copy_(model.classifier.weight)
        head.bias.copy_(model.classifier.bias)
    params = [*model.parameters(), *method.modules_.parameters()]
    output = method.process_batch(model, batch, None, 0)
    main, aux = output.losses["classification"], output.losses["task_topic"]
    shared = [*model.featurizer.parameters()]
    g_main, g_aux = (torch.cat([g.flatten() for g in torch.autograd.grad(loss, shared,
                                                                          retain_graph=True)])
                     for loss in (main, aux))
    assert float(g_main @ g_aux) < 0  # the tasks conflict
    own_main = torch.autograd.grad(main, [model.classifier.weight], retain_graph=True)[0]
    own_aux = torch.autograd.grad(aux, [head.weight], retain_graph=True)[0]
    method.backward(output, params)
    got = torch.cat([p.grad.flatten() for p in shared])
    assert torch.allclose(got, project_conflicts(torch.stack([g_main, g_aux])))
    assert not torch.allclose(got, g_main + g_aux)
    assert torch.equal(model.classifier.weight.grad, own_main)
    assert torch.equal(head.weight.grad, own_aux)


def test_pcgrad_passes_the_conformance_check() -> None:
    check_mitigation(MultiTask(tasks="domain", pcgrad=True))


def test_multitask_with_pcgrad_learns_and_repeats_exactly(tmp_path: Path) -> None:
    x, y, aux, target = rows()
    method = MultiTask(tasks="topic,domain", pcgrad=True)
    first, again = (fit_features(x, y, IDS, tmp_path / name, method, SMALL, target,
                                 tasks={"topic": aux}) for name in ("a", "b"))
    assert first.steps == again.steps
    loss = [row["loss"] for row in first.steps]
    assert np.mean(loss[-3:]) < np.mean(loss[:3])
    assert first.epoch_log[-1]["val_accuracy"] > 0.8
    plain = fit_features(x, y, IDS, tmp_path / "plain", MultiTask(tasks="topic,domain"), SMALL,
                         target, tasks={"topic": aux})
    assert plain.steps != first.steps  # the projection changed the training


@pytest.mark.parametrize(("method", "tasks", "target", "message"), [
    (MultiTask(tasks="topic"), {}, False,
     "multitask: task 'topic' has no labels in the training data (label columns: none)"),
    (MultiTask(tasks="topic"), {"topic": ["a", "b"] * 10}, False,
     "task 'topic': 20 labels for 120 training rows; one per row"),
    (MultiTask(tasks="topic"), {"topic": ["a"] * 120}, False,
     "task 'topic': needs at least two classes"),
    (MultiTask(tasks="topic"), {"topic": ["a", None] * 60}, False, "task 'topic': row 1 has"),
    (MultiTask(tasks="domain"), {}, False, "multitask trains on unlabelled rows"),
    (MultiTask(tasks="topic", weighting="fixed", weights="1,2"), {"topic": ["a", "b"] * 60},
     False, "multitask: weights='1,2' must list one non-negative number per task"),
    (MultiTask(tasks="topic", weighting="gradnorm"), {"topic": ["a", "b"] * 60}, False,
     "multitask: weighting='gradnorm'"),
    (MultiTask(tasks=""), {}, False, "multitask: no auxiliary task"),
    (MultiTask(tasks="topic,topic"), {"topic": ["a", "b"] * 60}, False,
     "multitask: tasks='topic,topic' must name each task once"),
])
def test_labels_that_dont_match_are_one_line_errors(method: MultiTask, tasks: dict, target: bool,
                                                    message: str, tmp_path: Path) -> None:
    x, y, _, rows_target = rows()
    with pytest.raises(ShiftbenchError) as info:
        fit_features(x, y, IDS, tmp_path, method, SMALL, rows_target if target else None,
                     tasks=tasks)
    assert message in str(info.value) and "\n" not in str(info.value)


def test_a_linear_head_is_refused() -> None:
    with pytest.raises(ShiftbenchError, match="shares no trainable representation"):
        MultiTask().setup(HeadNet(4, 2, hidden=0), steps_per_epoch=1)
