"""awdlib: the AWD-LSTM of Merity, Keskar & Socher (2017), *Regularizing and Optimizing LSTM Language
Models*, as a small tested library behind the teaching notebooks.

Notebook and download extras (matplotlib, ipywidgets, pooch) are imported lazily, so ``import awdlib``
and ``python -m awdlib`` need only torch, numpy and tqdm.
"""

from .cache import (CacheInputs, CacheSearch, cache_attention, cache_inputs, cache_pointer_nll,
                    evaluate_with_cache, search_cache)
from .data import Corpus, Vocab, batchify, bptt_batches, load_corpus, synthetic_corpus
from .dropout import LockedDropout, WeightDrop, cudnn_repacks, dropconnect_mask, embedding_dropout
from .dynamic import (DynamicSearch, dynamic_cache_inputs, dynamic_evaluate, gradient_statistics,
                      search_dynamic)
from .model import AWDLSTM, AWDLSTMConfig, AWDLSTMOutput
from .optim import NTASGD, NonMonotonicTrigger, averaged_weights
from .presets import PRESETS, Preset
from .regularize import activation_regularization, temporal_activation_regularization
from .results import Ablation, Ladder
from .train import History, TrainConfig, Trainer, evaluate, perplexity

__version__ = "0.1.0"

__all__ = [
    "AWDLSTM", "AWDLSTMConfig", "Ablation", "AWDLSTMOutput", "CacheInputs", "CacheSearch", "Corpus",
    "DynamicSearch", "History",
    "Ladder", "LockedDropout", "NTASGD", "NonMonotonicTrigger", "PRESETS", "Preset", "TrainConfig",
    "Trainer", "Vocab", "WeightDrop", "activation_regularization", "averaged_weights", "batchify",
    "bptt_batches", "cache_attention", "cache_inputs", "cache_pointer_nll", "cudnn_repacks",
    "dropconnect_mask", "dynamic_cache_inputs", "dynamic_evaluate",
    "embedding_dropout", "evaluate", "evaluate_with_cache", "gradient_statistics", "load_corpus",
    "perplexity", "search_cache", "search_dynamic", "synthetic_corpus",
    "temporal_activation_regularization",
]
