"""A randomly initialised 2-layer Llama: as a transformers engine with a byte-level tokenizer, or as a model
folder with the embedded model's tokenizer for training runs. No download, cheap on CPU."""

from __future__ import annotations

from pathlib import Path

import torch
from tokenizers import Tokenizer, decoders, models, pre_tokenizers
from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast
from transformers.convert_slow_tokenizer import bytes_to_unicode

from spct.backends.transformers import TransformersBackend


def tiny_engine(reuse_kv: bool = True, context: int = 512, batch_size: int = 4) -> TransformersBackend:
    """Every character is a token, so `context` bounds the prompt in characters."""
    vocab = {ch: i for i, ch in enumerate(bytes_to_unicode().values())}
    vocab["<eos>"] = len(vocab)
    tok = Tokenizer(models.BPE(vocab=vocab, merges=[]))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)
    tok.decoder = decoders.ByteLevel()
    engine = TransformersBackend.__new__(TransformersBackend)
    engine.tokenizer = PreTrainedTokenizerFast(tokenizer_object=tok, eos_token="<eos>", pad_token="<eos>", padding_side="left")
    torch.manual_seed(0)
    config = LlamaConfig(vocab_size=len(vocab), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                         num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=context)
    engine.model = LlamaForCausalLM(config).eval()
    engine.device, engine.batch_size, engine.context_length, engine.model_name = "cpu", batch_size, context, "tiny"
    engine._score_tokens, engine.reuse_kv, engine._forced_ahead, engine.share_prefill = None, reuse_kv, {}, True
    return engine


def tiny_model_dir(path: Path) -> Path:
    """A folder `--model` accepts: a random 2-layer Llama (hidden 32) with the embedded model's tokenizer.

    Training runs on it take seconds, and its chat template is the one real runs use.
    """
    from transformers import AutoTokenizer

    from spct.backends.models import resolve_model

    tok = AutoTokenizer.from_pretrained(resolve_model("smollm2-135m")[0])
    torch.manual_seed(0)
    config = LlamaConfig(vocab_size=len(tok), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                         num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=2048,
                         bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id, tie_word_embeddings=True)
    LlamaForCausalLM(config).save_pretrained(path)
    tok.save_pretrained(path)
    return path
