"""The non-monotonic trigger and NT-ASGD's iterate averaging (paper Section 3, Algorithm 1)."""

import pytest
import torch
from torch import nn

from awdlib import NTASGD, NonMonotonicTrigger, averaged_weights


def fire_checks(trigger, losses):
    """The 0-based checks at which ``trigger.step`` returned True."""
    return [t for t, v in enumerate(losses) if trigger.step(v)]


def v1_typo_fire_check(losses, n):
    """arXiv v1's Algorithm 1 read literally: compare with the best of the *last* n checks."""
    for t, v in enumerate(losses):
        if t > n and v > min(losses[t - n:t]):
            return t
    return None


def test_trigger_fires_at_the_first_check_worse_than_the_best_before_the_last_n():
    # n = 2: check 3 (1.5) is only compared with logs[0..0] = [3.0]; check 4 (2.5) with min(3, 2) = 2
    losses = [3.0, 2.0, 1.0, 1.5, 2.5, 9.0]
    trigger = NonMonotonicTrigger(n=2)
    assert fire_checks(trigger, losses) == [4]
    assert trigger.fired_at == 4 and trigger.logs == losses


def test_v1_typo_reading_would_fire_earlier_on_the_same_sequence():
    losses = [3.0, 2.0, 1.0, 1.5, 2.5, 9.0]
    assert v1_typo_fire_check(losses, n=2) == 3  # 1.5 > min(2.0, 1.0)
    assert fire_checks(NonMonotonicTrigger(n=2), losses) == [4]


@pytest.mark.parametrize("n", [0, 1, 3, 5])
def test_trigger_never_fires_before_check_n_plus_1(n):
    worsening = [float(i) for i in range(n + 6)]  # every check is worse than all before it
    assert fire_checks(NonMonotonicTrigger(n), worsening) == [n + 1]


def test_trigger_fires_only_once():
    trigger = NonMonotonicTrigger(n=1)
    assert fire_checks(trigger, [1.0, 2.0, 3.0, 4.0, 0.5, 5.0, 6.0]) == [2]
    assert trigger.fired_at == 2


def test_monotonically_improving_losses_never_fire():
    trigger = NonMonotonicTrigger(n=5)
    assert fire_checks(trigger, [10.0 - 0.1 * i for i in range(60)]) == []
    assert not trigger.fired


def test_trigger_state_round_trips():
    trigger = NonMonotonicTrigger(n=2)
    fire_checks(trigger, [3.0, 2.0, 1.0])
    restored = NonMonotonicTrigger(n=7)
    restored.load_state_dict(trigger.state_dict())
    assert restored.n == 2 and restored.step(3.5) and restored.fired_at == 3  # 3.5 > logs[0] = 3.0


def _linear_and_batches(steps=8):
    torch.manual_seed(0)
    model = nn.Linear(3, 2)
    batches = [(torch.randn(5, 3), torch.randn(5, 2)) for _ in range(steps)]
    return model, batches


def _sgd_step(model, opt, batch):
    x, y = batch
    opt.zero_grad()
    nn.functional.mse_loss(model(x), y).backward()
    opt.step()


def _iterate(model):
    return [p.detach().clone() for p in model.parameters()]


def test_average_is_the_arithmetic_mean_of_the_iterates_since_the_switch():
    model, batches = _linear_and_batches()
    opt = NTASGD(model, lr=0.1, n=1, mode="ntasgd")
    for batch in batches[:3]:
        _sgd_step(model, opt, batch)
    for v in [1.0, 2.0, 3.0]:  # fires at check 2: averaging starts from the current iterate w_T
        opt.check(v)
    assert opt.averaging and opt.switch_step == 3
    recorded = [_iterate(model)]
    for batch in batches[3:]:
        _sgd_step(model, opt, batch)
        recorded.append(_iterate(model))
    for i, avg in enumerate(opt.average.module.parameters()):
        torch.testing.assert_close(avg, torch.stack([w[i] for w in recorded]).mean(0))
    assert int(opt.average.n_averaged) == len(recorded) == 6


def test_averaging_leaves_the_sgd_iterate_untouched():
    model, batches = _linear_and_batches()
    twin = nn.Linear(3, 2)
    twin.load_state_dict(model.state_dict())
    averaged, plain = NTASGD(model, lr=0.1, mode="asgd"), torch.optim.SGD(twin.parameters(), lr=0.1)
    for batch in batches:
        _sgd_step(model, averaged, batch)
        _sgd_step(twin, plain, batch)
    for p, q in zip(model.parameters(), twin.parameters()):
        torch.testing.assert_close(p, q)
    assert not torch.allclose(next(averaged.average.module.parameters()), next(model.parameters()))


def test_asgd_averages_from_the_first_iterate_and_sgd_never_averages():
    model, batches = _linear_and_batches(3)
    w0 = _iterate(model)
    asgd = NTASGD(model, lr=0.1, mode="asgd")
    recorded = [w0]
    for batch in batches:
        _sgd_step(model, asgd, batch)
        recorded.append(_iterate(model))
    assert asgd.switch_step == 0
    torch.testing.assert_close(next(asgd.average.module.parameters()),
                               torch.stack([w[0] for w in recorded]).mean(0))
    sgd = NTASGD(nn.Linear(3, 2), lr=0.1, n=0, mode="sgd")
    assert [sgd.check(v) for v in [1.0, 2.0]] == [False, True] and not sgd.averaging


def test_averaged_weights_context_evaluates_the_average_and_restores_the_iterate():
    model, batches = _linear_and_batches()
    opt = NTASGD(model, lr=0.5, mode="asgd")
    for batch in batches:
        _sgd_step(model, opt, batch)
    iterate, x = _iterate(model), torch.randn(4, 3)
    with opt.averaged_weights():
        for p, a in zip(model.parameters(), opt.average.module.parameters()):
            assert torch.equal(p, a)
        torch.testing.assert_close(model(x), opt.average.module(x))
    for p, w in zip(model.parameters(), iterate):
        assert torch.equal(p, w)
    with pytest.raises(RuntimeError), averaged_weights(model, opt.average):
        raise RuntimeError("evaluation failed")
    assert all(torch.equal(p, w) for p, w in zip(model.parameters(), iterate))


def test_averaged_weights_without_an_average_is_the_model_itself():
    model, _ = _linear_and_batches(0)
    iterate = _iterate(model)
    with averaged_weights(model, None) as m:
        assert m is model and all(torch.equal(p, w) for p, w in zip(m.parameters(), iterate))


def test_running_mean_equals_averaged_models_own_update_bit_for_bit():
    # NTASGD folds iterates into the mean without reading a counter from the device; on a CPU its
    # arithmetic must be exactly AveragedModel.update_parameters', which it replaces.
    from torch.optim.swa_utils import AveragedModel

    model, batches = _linear_and_batches(12)
    opt = NTASGD(model, lr=0.3, mode="asgd")
    reference = AveragedModel(model)
    reference.update_parameters(model)
    for batch in batches:
        _sgd_step(model, opt, batch)
        reference.update_parameters(model)
    for mine, theirs in zip(opt.average.module.parameters(), reference.module.parameters()):
        assert torch.equal(mine, theirs)
    assert int(opt.average.n_averaged) == int(reference.n_averaged) == opt.averaged_count == 13
