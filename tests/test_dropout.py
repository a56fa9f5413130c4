"""The paper's three dropouts (Merity et al., 2017, Sections 2 and 4.2-4.3): LockedDropout,
embedding_dropout and WeightDrop. Every input is tiny; the whole file runs in about a second."""

import copy
import io
import warnings

import pytest
import torch
from torch import nn

from awdlib import LockedDropout, WeightDrop, dropconnect_mask, embedding_dropout
from awdlib.dropout import cudnn_repacks

T, B, I, H = 6, 3, 4, 5  # time steps, batch, input features, hidden units


# The GPU runs go through cuDNN's fused LSTM; they are skipped on machines without one.
DEVICES = ["cpu", pytest.param("cuda", marks=pytest.mark.skipif(not torch.cuda.is_available(),
                                                                reason="needs a CUDA GPU"))]


def lstm_and_input(seed=0, dtype=torch.float32, device="cpu"):
    torch.manual_seed(seed)
    return nn.LSTM(I, H).to(device, dtype), torch.randn(T, B, I, dtype=dtype, device=device)


def unrolled_lstm(x, w_ih, w_hh, b_ih, b_hh):
    """A hand-written LSTM cell loop (PyTorch's gate order i, f, g, o) with zero initial state."""
    h = x.new_zeros(x.size(1), w_hh.size(1))
    c = torch.zeros_like(h)
    outputs = []
    for x_t in x:
        i, f, g, o = (x_t @ w_ih.T + b_ih + h @ w_hh.T + b_hh).chunk(4, dim=1)
        c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
        h = torch.sigmoid(o) * torch.tanh(c)
        outputs.append(h)
    return torch.stack(outputs)


# ------------------------------------------------------------------------------------ WeightDrop

def test_weight_drop_leaves_first_step_alone_and_changes_later_steps():
    # With a zero initial state, step 0 never multiplies W_hh, so two calls agree there only.
    lstm, x = lstm_and_input()
    wd = WeightDrop(lstm, 0.5).train()
    y1, _ = wd(x)
    y2, _ = wd(x)
    assert torch.equal(y1[0], y2[0])
    for t in range(1, T):
        assert not torch.allclose(y1[t], y2[t]), f"step {t} unaffected by a fresh mask"


def test_weight_drop_eval_is_deterministic_and_equals_plain_lstm():
    lstm, x = lstm_and_input()
    reference = copy.deepcopy(lstm)
    wd = WeightDrop(lstm, 0.5).eval()
    y1, (h1, c1) = wd(x)
    y2, _ = wd(x)
    y_ref, (h_ref, c_ref) = reference(x)
    assert torch.equal(y1, y2)
    assert torch.equal(y1, y_ref) and torch.equal(h1, h_ref) and torch.equal(c1, c_ref)


@pytest.mark.parametrize("device", DEVICES)
def test_weight_drop_uses_one_recurrent_matrix_for_every_step(device):
    # Recover this call's mask by replaying the RNG, then a manual unroll with that single dropped
    # W_hh must reproduce the whole output sequence (a per-step mask would not).
    lstm, x = lstm_and_input(device=device)
    wd = WeightDrop(lstm, 0.5).train()
    torch.manual_seed(7)
    w_hh = wd.dropped_weights()["weight_hh_l0"]
    torch.manual_seed(7)
    y, _ = wd(x)
    manual = unrolled_lstm(x, lstm.weight_ih_l0, w_hh, lstm.bias_ih_l0, lstm.bias_hh_l0)
    tolerance = {"rtol": 0, "atol": 2e-3} if device == "cuda" else {}  # cuDNN may use TF32
    torch.testing.assert_close(y, manual, **tolerance)
    raw = unrolled_lstm(x, lstm.weight_ih_l0, lstm.weight_hh_l0, lstm.bias_ih_l0, lstm.bias_hh_l0)
    assert not torch.allclose(y[1:], raw[1:])  # the mask did change the recurrence


def test_weight_drop_mask_is_inverted_dropout_of_the_raw_weight():
    lstm, _ = lstm_and_input()
    p = 0.5
    dropped = WeightDrop(lstm, p).dropped_weights()["weight_hh_l0"]
    raw = lstm.weight_hh_l0
    kept = dropped != 0
    assert 0 < kept.sum() < kept.numel()
    torch.testing.assert_close(dropped[kept], raw[kept] / (1 - p))
    assert torch.all(dropped[~kept] == 0)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("p", [0.1, 0.5, 0.65])
def test_dropconnect_mask_is_bernoulli_in_every_slot_and_unbiased(p, device):
    # Four entries come from one 64-bit random number: each of the four slots must drop at rate p
    # (a 63-bit draw would leave one slot's sign bit always 0), and the mask's mean must be 1.
    torch.manual_seed(0)
    mask = dropconnect_mask(torch.empty(1000, 1000, device=device), p).cpu()
    levels = 2 ** 16
    scale = levels / (levels - round(p * levels))
    assert mask.unique().tolist() == [0.0, pytest.approx(scale)]
    slots = (mask == 0).float().view(-1, 4).mean(dim=0)  # drop rate per slot
    tolerance = 5 * (p * (1 - p) / (mask.numel() / 4)) ** 0.5
    assert torch.all((slots - p).abs() < tolerance), slots
    assert abs(mask.mean().item() - 1) < 5 * (p / (1 - p) / mask.numel()) ** 0.5
    kept = (mask != 0).float().flatten()
    neighbours = torch.corrcoef(torch.stack([kept[:-1], kept[1:]]))[0, 1]
    assert abs(neighbours) < 0.01


def test_dropconnect_mask_scale_and_edge_cases():
    assert torch.equal(dropconnect_mask(torch.empty(3, 5), 0.0), torch.ones(3, 5))  # odd size, p = 0
    torch.manual_seed(0)
    half = dropconnect_mask(torch.empty(7, 9, dtype=torch.float64), 0.5)
    assert half.dtype == torch.float64 and set(half.unique().tolist()) == {0.0, 2.0}
    for bad in (-0.1, 1.0, 1 - 2 ** -20):
        with pytest.raises(ValueError, match="dropout rate"):
            dropconnect_mask(torch.empty(2, 2), bad)
    with pytest.raises(ValueError, match="weight-drop rate"):
        WeightDrop(nn.LSTM(I, H), 1.0)


def test_dropconnect_mask_is_seeded_and_cut_connections_stay_cut_as_p_grows():
    # The same seed gives the same draws, so a larger p drops a superset (notebook 02's slider).
    w = torch.empty(40, 30)
    torch.manual_seed(4)
    a = dropconnect_mask(w, 0.3)
    torch.manual_seed(4)
    b = dropconnect_mask(w, 0.6)
    torch.manual_seed(4)
    assert torch.equal(dropconnect_mask(w, 0.3), a)
    assert not torch.equal(dropconnect_mask(w, 0.3), a)  # the next call draws afresh
    assert torch.all(b[a == 0] == 0) and (b == 0).sum() > (a == 0).sum()


def test_weight_drop_only_touches_hidden_to_hidden_weights():
    lstm, _ = lstm_and_input()
    assert WeightDrop(lstm, 0.5).weights == ("weight_hh_l0",)


def test_weight_drop_survives_train_eval_train_round_trip():
    # The official code raised a TypeError on the first training step after eval().
    lstm, x = lstm_and_input()
    wd = WeightDrop(lstm, 0.5)
    wd.train()(x)
    wd.eval()(x)
    y, _ = wd.train()(x)
    y.sum().backward()
    assert lstm.weight_hh_l0.grad is not None


def test_weight_drop_with_p_zero_equals_plain_lstm():
    lstm, x = lstm_and_input()
    wd = WeightDrop(copy.deepcopy(lstm), 0.0).train()
    torch.testing.assert_close(wd(x)[0], lstm(x)[0], rtol=0, atol=0)


def test_weight_drop_gradients_reach_the_raw_weight_through_the_mask():
    lstm, x = lstm_and_input()
    wd = WeightDrop(lstm, 0.5).train()
    torch.manual_seed(3)
    mask = wd.dropped_weights()["weight_hh_l0"] != 0
    torch.manual_seed(3)
    y, _ = wd(x)
    y.pow(2).sum().backward()
    grad = lstm.weight_hh_l0.grad
    assert grad is not None and grad[mask].abs().sum() > 0
    assert torch.all(grad[~mask] == 0)  # dropped connections get no gradient
    assert lstm.weight_ih_l0.grad.abs().sum() > 0


def test_weight_drop_state_dict_round_trips_into_weight_drop_and_plain_lstm():
    lstm, x = lstm_and_input()
    wd = WeightDrop(lstm, 0.5).eval()
    buffer = io.BytesIO()
    torch.save(wd.state_dict(), buffer)
    buffer.seek(0)
    state = torch.load(buffer, weights_only=True)
    assert "module.weight_hh_l0" in state  # the raw weight under its usual name

    fresh = WeightDrop(nn.LSTM(I, H), 0.5).eval()
    fresh.load_state_dict(state)
    assert torch.equal(fresh(x)[0], wd(x)[0])

    plain = nn.LSTM(I, H)
    plain.load_state_dict({k.removeprefix("module."): v for k, v in state.items()})
    assert torch.equal(plain(x)[0], wd(x)[0])


def test_weight_drop_deepcopy_is_independent_and_equal():
    lstm, x = lstm_and_input()
    wd = WeightDrop(lstm, 0.5)
    twin = copy.deepcopy(wd)
    assert torch.equal(twin.eval()(x)[0], wd.eval()(x)[0])
    torch.manual_seed(1)
    y, _ = twin.train()(x)
    torch.manual_seed(1)
    assert torch.equal(y, wd.train()(x)[0])
    with torch.no_grad():
        twin.module.weight_hh_l0.zero_()
    assert lstm.weight_hh_l0.abs().sum() > 0


def test_weight_drop_moves_with_to_dtype():
    lstm, x = lstm_and_input()
    wd = WeightDrop(lstm, 0.5).to(torch.float64)
    assert lstm.weight_hh_l0.dtype == torch.float64
    y, _ = wd.train()(x.double())
    assert y.dtype == torch.float64
    assert wd.eval()(x.double())[0].dtype == torch.float64


@pytest.mark.parametrize("device", DEVICES)
def test_weight_drop_counts_cudnns_repack_warning_instead_of_showing_it(device):
    # cuDNN wants one flat weight buffer; it re-packs the swapped-in W_hh at every training call and
    # warns. The warning is not shown; it is counted, as the sign that the fused kernel ran.
    lstm, x = lstm_and_input(device=device)
    wd = WeightDrop(lstm, 0.5).train()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        wd(x)[0].sum().backward()
        wd.eval()(x)
        wd.train()(x)
    assert not [w for w in caught if "contiguous chunk" in str(w.message)]
    assert cudnn_repacks(nn.Sequential(wd)) == (2 if device == "cuda" else 0)


def test_weight_drop_still_shows_every_other_warning(monkeypatch):
    import awdlib.dropout

    def warning_call(module, weights, args, kwargs):
        warnings.warn("something else went wrong", RuntimeWarning)
        return module(*args, **kwargs)
    monkeypatch.setattr(awdlib.dropout, "functional_call", warning_call)
    lstm, x = lstm_and_input()
    with pytest.warns(RuntimeWarning, match="something else went wrong"):
        WeightDrop(lstm, 0.5).train()(x)


# --------------------------------------------------------------------------------- LockedDropout

def test_locked_mask_is_shared_across_time_and_differs_across_examples():
    torch.manual_seed(0)
    x = torch.rand(T, 8, 10) + 0.5  # no zeros, so output / input recovers the mask
    ratio = LockedDropout(0.5).train()(x) / x
    assert torch.allclose(ratio, ratio[:1].expand_as(ratio))  # same mask at every step
    assert set(ratio.unique().tolist()) <= {0.0, 2.0}
    assert not torch.equal(ratio[0, 0], ratio[0, 1])  # each example its own mask


def test_locked_dropout_is_identity_in_eval_and_with_p_zero():
    x = torch.randn(T, B, H)
    assert LockedDropout(0.5).eval()(x) is x
    assert torch.equal(LockedDropout(0.0).train()(x), x)


def test_locked_dropout_keeps_the_mean_inverted_scaling():
    torch.manual_seed(0)
    x = torch.ones(2, 200, 500)
    y = LockedDropout(0.4).train()(x)
    assert abs(y.mean().item() - 1.0) < 0.01
    torch.testing.assert_close(y.unique(), torch.tensor([0.0, 1 / 0.6]))


# ----------------------------------------------------------------------------- embedding_dropout

def test_embedding_dropout_drops_whole_word_types_consistently():
    torch.manual_seed(0)
    emb = nn.Embedding(12, 4)
    words = torch.tensor([[0, 1, 2, 3, 4, 5], [5, 4, 3, 2, 1, 0], [0, 0, 1, 1, 2, 2]]).repeat(1, 2)
    p = 0.5
    out = embedding_dropout(emb, words, p)
    seen = {"dropped": 0, "kept": 0}
    for w in words.unique().tolist():
        vectors = out[words == w]  # every occurrence of word type w
        if torch.all(vectors == 0):
            seen["dropped"] += 1
        else:
            torch.testing.assert_close(vectors, (emb.weight[w] / (1 - p)).expand_as(vectors))
            seen["kept"] += 1
    assert seen["dropped"] and seen["kept"]


def test_embedding_dropout_with_p_zero_is_a_plain_lookup():
    emb = nn.Embedding(12, 4)
    words = torch.randint(0, 12, (T, B))
    assert torch.equal(embedding_dropout(emb, words, 0.0), emb(words))


@pytest.mark.parametrize("p", [0.1, 0.5])
def test_embedding_dropout_gradient_reaches_kept_rows_only(p):
    torch.manual_seed(0)
    emb = nn.Embedding(50, 3)
    words = torch.arange(50).view(10, 5)
    out = embedding_dropout(emb, words, p)
    out.sum().backward()
    dropped = (out == 0).all(dim=-1)  # (time, batch) positions of dropped types
    rows = emb.weight.grad.abs().sum(dim=1)
    assert torch.all(rows[words[dropped]] == 0)
    assert torch.all(rows[words[~dropped]] > 0)


@pytest.mark.parametrize("p", [1.0, 1.5, -0.1, float("nan")])
def test_locked_and_embedding_dropout_refuse_a_rate_outside_zero_to_one(p):
    with pytest.raises(ValueError, match=r"locked dropout rate must be in \[0, 1\)"):
        LockedDropout(p)
    with pytest.raises(ValueError, match=r"embedding dropout rate must be in \[0, 1\)"):
        embedding_dropout(nn.Embedding(5, 3), torch.tensor([[1]]), p)
