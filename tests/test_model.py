"""AWDLSTM (Merity et al., 2017, Section 5): sizes, outputs, tying, initialisation, carried state."""

import pytest
import torch

from awdlib import AWDLSTM, AWDLSTMConfig, LockedDropout, WeightDrop

V = 30


def tiny(**changes):
    torch.manual_seed(0)
    config = dict(vocab_size=V, emb_size=6, hidden_size=8, n_layers=3)
    return AWDLSTM(AWDLSTMConfig(**{**config, **changes}))


@pytest.mark.parametrize("vocab, changes, expected", [
    (10000, {}, 24_221_600),  # the paper's PTB model (Section 5: 24M parameters)
    (33278, {"dropouti": 0.65}, 33_556_078),  # the paper's WikiText-2 model (33M)
])
def test_paper_models_have_the_published_parameter_counts(vocab, changes, expected):
    model = AWDLSTM(AWDLSTMConfig(vocab_size=vocab, **changes))
    assert model.num_parameters() == expected
    assert sum(p.numel() for p in model.parameters()) == expected


def test_output_shapes_and_per_layer_outputs():
    model = tiny()
    tokens = torch.randint(0, V, (5, 2))
    out = model(tokens, model.init_hidden(2))
    assert out.logits.shape == (5, 2, V)
    assert [h.shape for h, _ in out.hidden] == [(1, 2, 8), (1, 2, 8), (1, 2, 6)]
    assert [c.shape for _, c in out.hidden] == [(1, 2, 8), (1, 2, 8), (1, 2, 6)]
    assert [r.shape for r in out.raw_outputs] == [(5, 2, 8), (5, 2, 8), (5, 2, 6)]
    assert [d.shape for d in out.dropped_outputs] == [(5, 2, 8), (5, 2, 8), (5, 2, 6)]


def test_dropped_outputs_equal_raw_in_eval_and_differ_in_train():
    model = tiny()
    tokens = torch.randint(0, V, (5, 2))
    out = model.eval()(tokens, model.init_hidden(2))
    for raw, dropped in zip(out.raw_outputs, out.dropped_outputs):
        assert torch.equal(raw, dropped)
    out = model.train()(tokens, model.init_hidden(2))
    for raw, dropped in zip(out.raw_outputs, out.dropped_outputs):
        assert not torch.equal(raw, dropped)


def test_the_model_composes_the_dropout_modules_at_the_configured_rates():
    model = tiny(dropout=0.4, dropouth=0.3, dropouti=0.65, wdrop=0.5)
    assert all(isinstance(r, WeightDrop) and r.p == 0.5 for r in model.rnns)
    assert isinstance(model.input_drop, LockedDropout) and model.input_drop.p == 0.65
    assert model.hidden_drop.p == 0.3 and model.output_drop.p == 0.4


def test_tied_weights_share_storage_and_untied_do_not():
    model = tiny()
    assert model.decoder.weight is model.encoder.weight
    assert model.decoder.weight.data_ptr() == model.encoder.weight.data_ptr()
    untied = tiny(tie_weights=False)
    assert untied.decoder.weight.data_ptr() != untied.encoder.weight.data_ptr()
    assert untied.decoder.weight.shape == (V, 8)


def test_initialisation_embedding_uniform_and_decoder_bias_zero():
    model = AWDLSTM(AWDLSTMConfig(vocab_size=2000, emb_size=50, hidden_size=20, n_layers=1))
    w = model.encoder.weight
    assert w.abs().max() <= 0.1
    assert w.abs().max() > 0.09 and abs(w.mean().item()) < 0.01  # spread over U[-0.1, 0.1]
    assert torch.all(model.decoder.bias == 0)


def test_hidden_state_is_carried_two_halves_equal_one_window():
    model = tiny().eval()
    tokens = torch.randint(0, V, (8, 2))
    full = model(tokens, model.init_hidden(2))
    first = model(tokens[:4], model.init_hidden(2))
    second = model(tokens[4:], first.hidden)
    torch.testing.assert_close(torch.cat([first.logits, second.logits]), full.logits)
    for (h_a, c_a), (h_b, c_b) in zip(second.hidden, full.hidden):
        torch.testing.assert_close(h_a, h_b)
        torch.testing.assert_close(c_a, c_b)
    restarted = model(tokens[4:], model.init_hidden(2))
    assert not torch.allclose(restarted.logits, full.logits[4:])  # the state does matter


def test_without_dropout_train_and_eval_agree():
    model = tiny(dropout=0, dropouth=0, dropouti=0, dropoute=0, wdrop=0)
    tokens = torch.randint(0, V, (5, 2))
    a = model.train()(tokens, model.init_hidden(2)).logits
    b = model.eval()(tokens, model.init_hidden(2)).logits
    assert torch.equal(a, b)


def test_gradients_reach_every_parameter():
    model = tiny().train()
    tokens = torch.randint(0, V, (5, 2))
    model(tokens, model.init_hidden(2)).logits.logsumexp(-1).sum().backward()
    for name, p in model.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, name


@pytest.mark.parametrize("changes, message", [
    ({"dropout": 1.5}, "model.dropout must be in [0, 1), got 1.5"),
    ({"dropoute": 1.0}, "model.dropoute must be in [0, 1), got 1.0"),
    ({"dropouth": -0.1}, "model.dropouth must be in [0, 1), got -0.1"),
    ({"n_layers": 0}, "model.n_layers must be an integer >= 1, got 0"),
    ({"tie_weights": "no"}, "model.tie_weights must be true or false, got 'no'"),
])
def test_config_refuses_a_bad_value_naming_the_field_and_what_is_allowed(changes, message):
    with pytest.raises(ValueError) as err:
        AWDLSTMConfig(10, **changes)
    assert str(err.value) == message
