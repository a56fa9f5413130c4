"""Dynamic evaluation (awdlib.dynamic) against its update rule computed by hand, on tiny AWD-LSTMs, and
on the command line."""

import math
import re

import pytest
import torch
from torch.func import functional_call

import awdlib
from awdlib.__main__ import main
from awdlib.checkpoint import load_model
from awdlib.dynamic import decay_rates, tune_and_test

SEGMENT = 5


def tiny_model(vocab=30, dtype=torch.float32, seed=0):
    """Two layers, every dropout of the paper on (they must be off while adapting)."""
    torch.manual_seed(seed)
    return awdlib.AWDLSTM(awdlib.AWDLSTMConfig(vocab, 8, 12, 2)).to(dtype).eval()


@pytest.fixture(scope="module")
def corpus():
    return awdlib.synthetic_corpus(vocab_size=30, n_train=3000, n_eval=600)


@pytest.fixture(scope="module")
def model_and_stats(corpus):
    model = tiny_model()
    return model, awdlib.gradient_statistics(model, corpus.train, batch_size=20)


def random_ms_grads(model, seed=1):
    """Mean squares of the size of real ones, with a few far above the rest, so that the decay
    rates of those weights are clipped at 1."""
    g = torch.Generator().manual_seed(seed)
    ms = {}
    for name, p in model.named_parameters():
        values = ((0.5 + torch.rand(p.shape, generator=g, dtype=torch.float64)) * 0.1) ** 2
        values.view(-1)[:3] = 1e4
        ms[name] = values.to(p.dtype)
    return ms


# ------------------------------------------------------------------------------- lr = 0 is plain
@pytest.mark.parametrize("decay", [0.0, 0.5, 1.0])
@pytest.mark.parametrize("with_stats", [False, True])
def test_lr_zero_is_plain_evaluation_at_batch_one_bit_for_bit(corpus, model_and_stats, decay,
                                                             with_stats):
    model, ms = model_and_stats
    ids = corpus.valid
    loss = awdlib.dynamic_evaluate(model, ids, 0.0, decay, SEGMENT, ms if with_stats else None)
    # at lr 0 every step is the identity, so none is taken and no gradient either: the same
    # forward passes, in the same windows, summed the same way as evaluate's
    assert loss == awdlib.evaluate(model, ids, bptt=SEGMENT, batch_size=1)
    # evaluate's default bptt 70 sums the float32 losses of 70 tokens at a time, and its LSTM runs
    # 70 steps per call: the same arithmetic up to float32 rounding of those sums
    assert loss == pytest.approx(awdlib.evaluate(model, ids, batch_size=1), rel=1e-6)


def test_a_vanishing_lr_takes_the_adapting_path_to_the_plain_loss(corpus, model_and_stats):
    model, ms = model_and_stats
    plain = awdlib.evaluate(model, corpus.valid, bptt=SEGMENT, batch_size=1)
    tiny = awdlib.dynamic_evaluate(model, corpus.valid, 1e-12, 0.1, SEGMENT, ms)
    # gradients taken and steps of ~1e-12 applied; the LSTM's forward with autograd on rounds
    # differently from evaluate's (no_grad) kernel, by ~1e-7
    assert tiny == pytest.approx(plain, rel=1e-6)
    assert awdlib.dynamic_evaluate(model, corpus.valid, 1e-2, 0.1, SEGMENT, ms) != \
        pytest.approx(plain, rel=1e-3)


# ------------------------------------------------------------------------- the model is unchanged
@pytest.mark.parametrize("mode", ["train", "eval"])
def test_the_model_is_unchanged_bit_for_bit_and_keeps_its_mode(corpus, model_and_stats, mode):
    model, ms = model_and_stats
    model.train(mode == "train")
    before = {k: v.clone() for k, v in model.state_dict().items()}
    loss = awdlib.dynamic_evaluate(model, corpus.valid, 1e-2, 0.1, SEGMENT, ms)
    assert loss != awdlib.evaluate(model, corpus.valid, bptt=SEGMENT, batch_size=1)  # it adapted
    assert model.training == (mode == "train")
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    assert all(p.grad is None for p in model.parameters())
    assert model.decoder.weight is model.encoder.weight
    model.eval()


def test_an_error_part_way_still_restores_the_weights_and_mode(model_and_stats):
    model, ms = model_and_stats
    model.train()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    ids = torch.tensor([1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 99, 3])  # id 99 is outside the vocabulary
    with pytest.raises(IndexError):  # raised in the third segment, after two updates
        awdlib.dynamic_evaluate(model, ids, 1e-2, 0.1, SEGMENT, ms)
    assert model.training
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    model.eval()


# -------------------------------------------------------------------- the rule, computed by hand
def by_hand(model, ids, lr, decay, ms_grads, epsilon):
    """Per-token NLL of each segment with the weights of the step before: theta_0 (the trained
    weights) scores s_1, theta_1 scores s_2, ... The update, straight from the paper's equations:
    without ms_grads (SGD) theta - lr g + decay (theta_g - theta); with them
    theta - lr g / (sqrt(MS_g) + epsilon) + rate (theta_g - theta), where
    rate = min(decay sqrt(MS_g) / mean(sqrt(MS_g)), 1), the mean over all the weights. Gradients by
    autograd of a hand-written mean NLL, the model called in eval mode with the weights swapped in."""
    theta_g = {n: p.detach().clone() for n, p in model.named_parameters()}
    if ms_grads is None:
        step, rate = dict.fromkeys(theta_g, 1.0), dict.fromkeys(theta_g, decay)
    else:
        rms = {n: ms.sqrt() for n, ms in ms_grads.items()}
        mean = torch.cat([r.flatten() for r in rms.values()]).mean()
        step = {n: 1 / (r + epsilon) for n, r in rms.items()}
        rate = {n: torch.clamp(decay * r / mean, max=1.0) for n, r in rms.items()}
    theta, hidden, token_nll = dict(theta_g), None, []
    model.eval()
    for start in range(0, len(ids) - 1, SEGMENT):
        inputs, targets = ids[start : start + SEGMENT], ids[start + 1 : start + 1 + SEGMENT]
        weights = {n: t.clone().requires_grad_() for n, t in theta.items()}
        hidden = hidden or model.init_hidden(1)
        out = functional_call(model, weights, (inputs[: len(targets)].unsqueeze(1), hidden))
        log_probs = torch.log_softmax(out.logits[:, 0], dim=-1)
        nll = -log_probs[torch.arange(len(targets)), targets]
        token_nll.append(nll.detach())
        grads = torch.autograd.grad(nll.mean(), list(weights.values()))
        theta = {n: theta[n] - lr * step[n] * g + rate[n] * (theta_g[n] - theta[n])
                 for n, g in zip(weights, grads)}
        hidden = [(h.detach(), c.detach()) for h, c in out.hidden]
    return torch.cat(token_nll)


@pytest.mark.parametrize("rule", ["sgd", "rms"])
@pytest.mark.parametrize("decay", [0.0, 0.3])
def test_two_updates_follow_the_rule_computed_by_hand(rule, decay):
    model = tiny_model(dtype=torch.float64)
    ms = random_ms_grads(model) if rule == "rms" else None
    lr, epsilon = (0.5, None) if rule == "sgd" else (0.02, 1e-3)
    ids = torch.randint(0, 30, (16,), generator=torch.Generator().manual_seed(3))  # 3 segments
    expected = by_hand(model, ids, lr, decay, ms, epsilon)
    model.train()  # the dropouts must be off while adapting, as they are by hand
    got = awdlib.dynamic_cache_inputs(model, ids, lr, decay, SEGMENT, ms,
                                      **({"epsilon": epsilon} if epsilon else {}))
    assert model.training
    torch.testing.assert_close(-got.target_log_probs, expected, rtol=1e-10, atol=1e-12)
    # the test can fail: the updates move the third segment's loss far beyond the tolerance
    unadapted = by_hand(model, ids, 0.0, decay, ms, epsilon or 1.0)
    assert torch.equal(expected[:SEGMENT], unadapted[:SEGMENT])
    assert (expected[2 * SEGMENT :] - unadapted[2 * SEGMENT :]).abs().max() > 1e-3
    if rule == "rms" and decay:  # some decay rates are clipped at 1, the rest below it
        rates = torch.cat([r.flatten() for r in decay_rates(list(ms.values()), decay)])
        assert (rates == 1).any() and (rates < 1).any()


def test_rms_norm_has_mean_one_over_the_weights_not_over_the_tensors():
    small, large = torch.full((2,), 4.0), torch.full((98,), 1.0)  # roots 2 and 1
    rates = decay_rates([small, large], 1e-3)
    mean_root = (2 * 2 + 98 * 1) / 100  # the paper: mean over the 100 weights
    torch.testing.assert_close(rates[0], torch.full((2,), 1e-3 * 2 / mean_root))
    torch.testing.assert_close(rates[1], torch.full((98,), 1e-3 * 1 / mean_root))
    assert torch.cat(rates).mean() == pytest.approx(1e-3)  # (the code's mean of tensor means: 1.5)


def test_adaptation_lowers_the_loss_on_text_that_repeats(corpus, model_and_stats):
    model, ms = model_and_stats
    sentence = torch.randint(0, 30, (13,), generator=torch.Generator().manual_seed(5))
    ids = sentence.repeat(30)
    plain = awdlib.dynamic_evaluate(model, ids, 0.0, 0.0, SEGMENT, ms)
    adapted = awdlib.dynamic_evaluate(model, ids, 3e-3, 1e-3, SEGMENT, ms)
    assert adapted < plain - 0.5  # nats per token


# --------------------------------------------------------------------------- gradient statistics
def test_gradient_statistics_are_the_mean_squared_batch_gradients(corpus):
    model = tiny_model(dtype=torch.float64).train()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    ms = awdlib.gradient_statistics(model, corpus.train, segment_len=4, batch_size=7, max_batches=3)
    assert model.training and all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    assert all(p.grad is None for p in model.parameters())
    model.eval()
    data = awdlib.batchify(corpus.train, 7)
    names = [n for n, _ in model.named_parameters()]
    squares, hidden = [], model.init_hidden(7)
    for k in range(3):  # windows of 4 steps, state carried, mean loss over the 28 targets
        model.zero_grad()
        out = model(data[4 * k : 4 * k + 4], hidden)
        log_probs = torch.log_softmax(out.logits, dim=-1)
        targets = data[4 * k + 1 : 4 * k + 5]
        (-log_probs.gather(2, targets.unsqueeze(2)).mean()).backward()
        squares.append({n: p.grad.clone() ** 2 for n, p in model.named_parameters()})
        hidden = [(h.detach(), c.detach()) for h, c in out.hidden]
    model.zero_grad(set_to_none=True)
    assert list(ms) == names  # the tied decoder weight is the embedding: one entry
    for name in names:
        torch.testing.assert_close(ms[name], sum(s[name] for s in squares) / 3)


def test_gradient_statistics_fit_the_check_and_a_foreign_model_does_not(corpus, model_and_stats):
    model, ms = model_and_stats
    awdlib.dynamic.check_ms_grads(model, ms)
    with pytest.raises(ValueError, match="ms_grads does not fit this model"):
        awdlib.dynamic.check_ms_grads(tiny_model(vocab=31), ms)


# ---------------------------------------------------------------------------------------- search
def test_the_searchs_best_point_equals_evaluating_it_directly(corpus, model_and_stats):
    model, ms = model_and_stats
    result = awdlib.search_dynamic(model, corpus.valid, ms, lrs=(0.0, 1e-3, 1e-2),
                                   decays=(0.0, 0.05), first_tokens=301)
    assert result.losses.shape == (3, 2) and result.tokens == 301
    best = result.best
    assert best["loss"] == result.losses.min().item()
    assert best["lr"] > 0  # adapting helps even on 300 tokens
    assert best["loss"] == awdlib.dynamic_evaluate(model, corpus.valid[:301], best["lr"],
                                                   best["decay"], SEGMENT, ms)
    assert result.plain_loss == result.losses[0, 0].item() == \
        awdlib.evaluate(model, corpus.valid[:301], bptt=SEGMENT, batch_size=1)


def test_a_search_reuses_the_points_it_was_given_and_records_the_rest(corpus, model_and_stats):
    model, ms = model_and_stats
    known = {(1e-3, 0.0): -1.0}  # no real loss is negative: proof that this point was not rerun
    result = awdlib.search_dynamic(model, corpus.valid, ms, lrs=(1e-3, 1e-2), decays=(0.0, 0.05),
                                   first_tokens=101, known=known)
    assert result.best == dict(lr=1e-3, decay=0.0, loss=-1.0)
    assert set(known) == {(1e-3, 0.0), (1e-3, 0.05), (1e-2, 0.0), (1e-2, 0.05)}
    assert known[(1e-2, 0.05)] == awdlib.dynamic_evaluate(model, corpus.valid[:101], 1e-2, 0.05,
                                                          SEGMENT, ms)


def test_the_default_grid_is_the_authors_scaled_by_the_segment_length():
    grid = awdlib.dynamic.default_grid(20)
    assert grid["lrs"] == pytest.approx([1.2e-4, 1.6e-4, 2e-4, 2.4e-4, 2.8e-4, 4e-4])
    assert grid["decays"] == pytest.approx([4e-3, 8e-3, 1.2e-2, 2e-2])


def test_tune_and_test_scores_test_once_with_the_settings_validation_chose(corpus, model_and_stats):
    model, ms = model_and_stats
    grid = dict(lrs=(1e-4, 1e-3), decays=(0.0, 0.05))
    row = tune_and_test(model, corpus.valid, corpus.test, ms, first_tokens=201, **grid)
    best = awdlib.search_dynamic(model, corpus.valid, ms, first_tokens=201, **grid).best
    assert (row["lr"], row["decay"], row["search_tokens"]) == (best["lr"], best["decay"], 201)
    valid = awdlib.dynamic_evaluate(model, corpus.valid, best["lr"], best["decay"], SEGMENT, ms)
    assert row["valid_ppl"] == pytest.approx(math.exp(valid))  # the whole split, not the 201 ids
    test = awdlib.dynamic_evaluate(model, corpus.test, best["lr"], best["decay"], SEGMENT, ms)
    assert row["test_ppl"] == pytest.approx(math.exp(test))
    plain = awdlib.evaluate(model, corpus.test, SEGMENT, 1)
    assert row["test_plain_ppl"] == pytest.approx(math.exp(plain))
    assert row["test_ppl"] != pytest.approx(row["test_plain_ppl"])


# --------------------------------------------------------------------------- stacked with the cache
def test_the_cache_stacks_on_the_adapting_models_outputs(corpus, model_and_stats):
    model, ms = model_and_stats
    inputs = awdlib.dynamic_cache_inputs(model, corpus.valid, 1e-2, 0.05, SEGMENT, ms)
    T = len(corpus.valid) - 1
    assert inputs.target_log_probs.shape == (T,) and inputs.hiddens.shape == (T, 8)
    assert torch.equal(inputs.targets, corpus.valid[1:])
    adapted = awdlib.dynamic_evaluate(model, corpus.valid, 1e-2, 0.05, SEGMENT, ms)
    # lambdah 0: no cache; per-token sums in another order, whose rounding the updates carry on
    assert inputs.loss(100, 1.0, 0.0) == pytest.approx(adapted, rel=1e-6)
    plain = awdlib.cache_inputs(model, corpus.valid)
    torch.testing.assert_close(  # the first segment is scored before any step
        inputs.target_log_probs[:SEGMENT], plain.target_log_probs[:SEGMENT])
    torch.testing.assert_close(inputs.hiddens[:SEGMENT], plain.hiddens[:SEGMENT])
    assert not torch.allclose(inputs.hiddens[-SEGMENT:], plain.hiddens[-SEGMENT:])
    stacked = inputs.loss(100, 1.0, 0.1)
    assert math.isfinite(stacked) and stacked != pytest.approx(adapted)


# -------------------------------------------------------------------------------- bad arguments
def _foreign_shapes(model, ms):
    return {**ms, "decoder.bias": torch.zeros(7)}


def _foreign_names(model, ms):
    return {k.replace("encoder", "embedding"): v for k, v in ms.items()}


@pytest.mark.parametrize("change, message", [
    (dict(lr=-1e-3), r"lr must be a finite number >= 0 .*got -0.001"),
    (dict(lr=math.nan), r"lr must be a finite number >= 0 .*got nan"),
    (dict(decay=-0.1), r"decay must be between 0 and 1 .*got -0.1"),
    (dict(decay=1.5), r"decay must be between 0 and 1 .*got 1.5"),
    (dict(segment_len=0), r"segment_len must be an integer >= 1, got 0"),
    (dict(epsilon=0.0), r"epsilon must be a finite number > 0 .*got 0.0"),
    (dict(ids=torch.tensor([], dtype=torch.long)),
     r"ids must be a 1-D id stream of at least 2 tokens \(e.g. corpus.valid\), got \(0,\)"),
    (dict(ms_grads=_foreign_shapes), r"decoder.bias has shape \(7,\), the model's \(30,\); compute "
                                     r"it for this model: ms_grads = gradient_statistics"),
    (dict(ms_grads=_foreign_names), r"missing \['encoder.weight'\], unexpected "
                                    r"\['embedding.weight'\]; compute it for this model"),
])
def test_bad_arguments_are_refused_with_the_value_and_the_fix(corpus, model_and_stats, change,
                                                             message):
    model, ms = model_and_stats
    args = dict(ids=corpus.valid, lr=1e-3, decay=0.01, segment_len=SEGMENT, ms_grads=ms,
                epsilon=2e-5) | change
    if callable(args["ms_grads"]):
        args["ms_grads"] = args["ms_grads"](model, ms)
    with pytest.raises(ValueError, match=message):
        awdlib.dynamic_evaluate(model, **args)


# -------------------------------------------------------------------------------- command line
def test_dynamic_command_prints_the_perplexity_of_dynamic_evaluate(smoke_checkpoint, capsys):
    assert main(["dynamic", str(smoke_checkpoint), "--split", "valid", "--lr", "2e-4", "--decay",
                 "0.01", "--segment-len", "20", "--stat-batches", "5", "--no-download"]) == 0
    out = capsys.readouterr().out
    plain, adapted = (float(x) for x in re.search(r"perplexity ([\d.]+) without adaptation, "
                                                   r"([\d.]+) with it", out).groups())
    corpus, model = awdlib.PRESETS["smoke"].corpus(), load_model(smoke_checkpoint)
    ms = awdlib.gradient_statistics(model, corpus.train, segment_len=20, max_batches=5)
    expected = awdlib.dynamic_evaluate(model, corpus.valid, 2e-4, 0.01, 20, ms)
    assert adapted == pytest.approx(math.exp(expected), abs=0.01) and adapted < plain
    assert plain == pytest.approx(math.exp(awdlib.evaluate(model, corpus.valid, 20, 1)), abs=0.01)
    assert f"segment 20, epsilon 2e-05; {len(corpus.valid):,} tokens of ptb" in out


def test_dynamic_command_search_reports_valid_then_test_at_the_best_point(smoke_checkpoint,
                                                                          capsys):
    assert main(["dynamic", str(smoke_checkpoint), "--search", "--lrs", "0", "3e-4", "--decays",
                 "0.01", "--search-tokens", "500", "--segment-len", "20", "--stat-batches", "5",
                 "--no-download"]) == 0
    out = capsys.readouterr().out
    corpus, model = awdlib.PRESETS["smoke"].corpus(), load_model(smoke_checkpoint)
    ms = awdlib.gradient_statistics(model, corpus.train, segment_len=20, max_batches=5)
    result = awdlib.search_dynamic(model, corpus.valid, ms, (0, 3e-4), (0.01,), segment_len=20,
                                   first_tokens=500)
    best = result.best
    assert (f"valid: perplexity {math.exp(result.plain_loss):.2f} without adaptation, "
            f"{math.exp(best['loss']):.2f} at the best of 2 points (lr {best['lr']:g}, decay 0.01; "
            f"the first 500 tokens)") in out
    test = awdlib.dynamic_evaluate(model, corpus.test, best["lr"], 0.01, 20, ms)
    assert f"{math.exp(test):.2f} with it" in out and out.splitlines()[-1].startswith("test:")


@pytest.mark.parametrize("flags, code, message", [
    (["--lr", "-1"], 1, "error: --lr must be a finite number >= 0"),
    (["--decay", "2"], 1, "error: --decay must be between 0 and 1"),
    (["--epsilon", "0"], 1, "error: --epsilon must be a finite number > 0"),
    (["--search", "--decays", "0.01", "-2"], 1, "error: --decays: decay must be between 0 and 1"),
    (["--search", "--lrs", "inf"], 1, "error: --lrs: lr must be a finite number >= 0"),
    (["--segment-len", "0"], 2, "--segment-len: expected an integer >= 1, got '0'"),
    (["--search-tokens", "1"], 2, "--search-tokens: expected an integer >= 2, got '1'"),
])
def test_dynamic_command_rejects_bad_values_in_one_line(smoke_checkpoint, capsys, flags, code,
                                                        message):
    try:
        returned = main(["dynamic", str(smoke_checkpoint), *flags, "--no-download"])
    except SystemExit as exit:  # argparse
        returned = exit.code
    assert returned == code
    err = capsys.readouterr().err
    assert message in err.strip().splitlines()[-1]
    if code == 1:
        assert err.count("\n") == 1
