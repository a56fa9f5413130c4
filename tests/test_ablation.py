import pytest
import torch

import awdlib
import awdlib.train as train_module


@pytest.mark.parametrize("variable", [True, False])
def test_variable_bptt_switch_decides_the_training_window_lengths(tiny_corpus, monkeypatch,
                                                                   variable):
    preset = awdlib.PRESETS["smoke"].with_train(epochs=1, bptt=20, batch_size=5, log_epochs=False,
                                                variable_bptt=variable)
    trainer = preset.trainer(tiny_corpus)
    lengths, real_batches = [], train_module.bptt_batches

    def recording_batches(source, bptt, variable=True, generator=None):
        for batch in real_batches(source, bptt, variable, generator):
            if source is trainer.train_data:  # training windows only, not evaluation's
                lengths.append(batch[2])
            yield batch
    monkeypatch.setattr(train_module, "bptt_batches", recording_batches)
    trainer.fit()
    steps = trainer.train_data.size(0) - 1
    assert sum(lengths) == steps and len(lengths) > 20  # one pass over the data either way
    if variable:  # Section 4.1: drawn with the run's own seed, so exactly the library sampler's
        sampler = real_batches(trainer.train_data, 20, True, torch.Generator().manual_seed(141))
        assert lengths == [n for _, _, n in sampler] and len(set(lengths)) > 3
    else:
        assert set(lengths[:-1]) == {20} and lengths[-1] == steps - 20 * (len(lengths) - 1)


def test_variable_bptt_must_be_true_or_false():
    with pytest.raises(ValueError, match="variable_bptt"):
        awdlib.TrainConfig(variable_bptt="no")
