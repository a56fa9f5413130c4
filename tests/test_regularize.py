"""AR and TAR (paper Section 4.6): hand-computed values, and which layer output the Trainer feeds each."""

import pytest
import torch

import awdlib
import awdlib.train
from awdlib import activation_regularization as ar
from awdlib import temporal_activation_regularization as tar

# (time=3, batch=1, features=2)
H = torch.tensor([[[1.0, 2.0]], [[3.0, 0.0]], [[0.0, -1.0]]])


def test_ar_is_alpha_times_mean_of_squares():
    # squares 1, 4, 9, 0, 0, 1: sum 15 over 6 entries -> mean 2.5
    assert ar(H, alpha=1.0).item() == pytest.approx(2.5)
    assert ar(H, alpha=2.0).item() == pytest.approx(5.0)


def test_tar_is_beta_times_mean_of_squared_step_differences():
    # h_2 - h_1 = (2, -2), h_3 - h_2 = (-3, -1): squares 4, 4, 9, 1 -> mean 4.5
    assert tar(H, beta=1.0).item() == pytest.approx(4.5)
    assert tar(H, beta=2.0).item() == pytest.approx(9.0)


def test_tar_is_zero_for_a_constant_sequence_and_a_single_step():
    assert tar(torch.ones(4, 2, 3)).item() == 0.0
    assert tar(H[:1]).item() == 0.0


def test_penalties_have_the_gradients_of_their_formulas():
    h = H.clone().requires_grad_(True)
    ar(h, alpha=2.0).backward()
    torch.testing.assert_close(h.grad, 2.0 * 2 * H / H.numel())  # d/dh alpha*mean(h^2)
    h.grad = None
    tar(h, beta=1.0).backward()
    d = H[1:] - H[:-1]
    expected = torch.zeros_like(H)
    expected[1:] += 2 * d / d.numel()
    expected[:-1] -= 2 * d / d.numel()
    torch.testing.assert_close(h.grad, expected)


def test_trainer_applies_ar_to_dropped_and_tar_to_raw_last_layer_output(monkeypatch):
    corpus = awdlib.synthetic_corpus(n_train=400, n_eval=200)
    torch.manual_seed(0)
    model = awdlib.AWDLSTM(awdlib.AWDLSTMConfig(len(corpus.vocab), emb_size=8, hidden_size=12,
                                                n_layers=2, dropout=0.5))
    outputs, ar_args, tar_args = [], [], []
    forward = model.forward

    def recording_forward(*args):
        out = forward(*args)
        outputs.append(out)
        return out

    monkeypatch.setattr(model, "forward", recording_forward)
    monkeypatch.setattr(awdlib.train, "activation_regularization",
                        lambda x, alpha: ar_args.append(x) or ar(x, alpha))
    monkeypatch.setattr(awdlib.train, "temporal_activation_regularization",
                        lambda x, beta: tar_args.append(x) or tar(x, beta))
    config = awdlib.TrainConfig(epochs=1, batch_size=4, bptt=8, optimizer="sgd", progress=False,
                                log_epochs=False)
    awdlib.Trainer(model, corpus, config).fit()
    train_outputs = outputs[:len(ar_args)]  # evaluation calls come after the training windows
    assert ar_args and len(ar_args) == len(tar_args)
    for out, a, t in zip(train_outputs, ar_args, tar_args):
        assert a is out.dropped_outputs[-1] and t is out.raw_outputs[-1]
    assert not torch.equal(ar_args[0], tar_args[0])  # dropout 0.5 makes the two tensors differ
