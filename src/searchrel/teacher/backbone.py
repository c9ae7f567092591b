"""The teacher's backbone: any Hugging Face model as a K-class sequence classifier.

Encoders (BERT, MiniLM) pool [CLS]; decoders (Llama, Gemma, Qwen) pool the last token that is
not padding: transformers takes the rightmost token whose id differs from ``pad_token_id``,
which holds under left and right padding alike; we pad on the right so every real token keeps
the position it has alone. Optionally the base is loaded in 4-bit NF4 (qLoRA, bitsandbytes).
The attention kernel is chosen explicitly (``attention_implementation``), never left to
transformers' default: sdpa, or FlashAttention-2 where it can run.
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Sequence
from pathlib import Path
from typing import Literal

import torch
from transformers import (
    AutoModelForSequenceClassification,
    AutoTokenizer,
    BitsAndBytesConfig,
    PreTrainedModel,
    PreTrainedTokenizerBase,
)

Precision = Literal["auto", "fp32", "bf16", "fp16"]
HALF = (torch.float16, torch.bfloat16)  # the dtypes FlashAttention-2 runs in

# Adapter targets when none are configured: the first set whose modules the backbone has.
DEFAULT_TARGETS: tuple[tuple[str, ...], ...] = (
    ("q_proj", "k_proj", "v_proj", "o_proj"),  # Llama, Gemma, Qwen, Mistral
    ("query", "key", "value", "dense"),  # BERT, MiniLM, RoBERTa, XLM-R
    ("query_proj", "key_proj", "value_proj", "dense"),  # DeBERTa-v2/v3
    ("q_lin", "k_lin", "v_lin", "out_lin"),  # DistilBERT
    ("q", "k", "v", "o", "dense"),  # MPNet (all-mpnet-base-v2)
    ("qkv_proj", "o_proj"),  # Phi-3
)
HEADS = ("classifier", "score")  # the classification head: encoders, decoders
POOLER = "pooler"  # BERT-like encoders' tanh(dense([CLS])), between the encoder and the head
CPUINFO = "/proc/cpuinfo"
NATIVE_BF16_FLAGS = {"avx512_bf16", "amx_bf16"}  # the CPU flags of native bf16 arithmetic
BNB_CPU_PACKING = "support_avx512bf16_for_cpu"  # Linear4bit's switch for its CPU inference layout


def default_device() -> torch.device:
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def load_tokenizer(path: str) -> PreTrainedTokenizerBase:
    """The backbone's tokenizer; decoders (no pad token) pad with eos, always on the right."""
    tokenizer = AutoTokenizer.from_pretrained(path)
    if tokenizer.pad_token is None:  # Llama, Gemma base and Qwen-style tokenizers ship without
        if tokenizer.eos_token is None:
            raise ValueError(f"{path}: the tokenizer has neither a pad nor an eos token")
        tokenizer.pad_token = tokenizer.eos_token
    tokenizer.padding_side = "right"
    return tokenizer


@functools.cache
def cpu_has_native_bf16() -> bool:
    """Whether this CPU computes bf16 natively (AVX512-BF16 or AMX), read from the kernel's
    CPU flags. Elsewhere bf16 autocast is emulated and slower than fp32, so never assumed."""
    try:
        flags = Path(CPUINFO).read_text(encoding="utf-8", errors="replace")
    except OSError:  # not Linux
        return False
    return bool(NATIVE_BF16_FLAGS & set(flags.split()))


def autocast_dtype(precision: str, device: torch.device) -> torch.dtype | None:
    """The mixed-precision dtype (None: plain fp32); auto is bf16/fp16 on CUDA, bf16 on a CPU
    with native bf16, fp32 on other CPUs."""
    if precision == "auto":
        if device.type != "cuda":
            return torch.bfloat16 if cpu_has_native_bf16() else None
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    return {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}[precision]


def autocast(device: torch.device, dtype: torch.dtype | None) -> contextlib.AbstractContextManager:
    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=dtype)


def flash_attn_available() -> bool:
    """Whether the flash_attn package imports (installed, and built for this torch and CUDA)."""
    try:
        import flash_attn  # noqa: F401
    except Exception:  # ImportError, or an undefined symbol from a wheel for another torch
        return False
    return True


def attention_implementation(requested: str, device: torch.device, dtype: torch.dtype) -> str:
    """The attention kernel to load with: ``requested`` unless it is auto; auto is
    flash_attention_2 on CUDA with fp16/bf16 weights when flash_attn imports, otherwise sdpa."""
    if requested != "auto":
        return requested
    if device.type == "cuda" and dtype in HALF and flash_attn_available():
        return "flash_attention_2"
    return "sdpa"


def supports_sdpa(path: str) -> bool:
    """Whether transformers has an sdpa attention for this architecture (MPNet has none)."""
    from transformers import AutoConfig
    from transformers.models.auto.modeling_auto import MODEL_FOR_SEQUENCE_CLASSIFICATION_MAPPING

    config = AutoConfig.from_pretrained(path)
    try:
        model_class = MODEL_FOR_SEQUENCE_CLASSIFICATION_MAPPING[type(config)]
    except KeyError:  # not a sequence classifier: from_pretrained will say so
        return True
    return bool(getattr(model_class, "_supports_sdpa", False))


def backbone_attention(path: str, requested: str, device: torch.device, dtype: torch.dtype) -> str:
    """``attention_implementation`` for this backbone: auto falls back to eager where the
    architecture has no sdpa kernel; an explicit request is passed on as configured."""
    chosen = attention_implementation(requested, device, dtype)
    if requested == "auto" and chosen == "sdpa" and not supports_sdpa(path):
        return "eager"
    return chosen


def load_backbone(
    path: str,
    levels: int,
    pad_token_id: int,
    quantize: str,
    device: torch.device,
    amp: torch.dtype | None,
    attn_implementation: str = "auto",
) -> PreTrainedModel:
    """The base model with a fresh K-class head; NF4 4-bit weights when ``quantize`` is 4bit.
    ``attn_implementation``: auto, sdpa, eager or flash_attention_2 (see
    ``attention_implementation``); ``model.config._attn_implementation`` reports the one used."""
    if quantize == "4bit":
        bnb = BitsAndBytesConfig(
            load_in_4bit=True,
            bnb_4bit_quant_type="nf4",
            bnb_4bit_use_double_quant=True,
            bnb_4bit_compute_dtype=amp or torch.float32,
            # The K-class head is new and trains in full precision; without this list an
            # encoder's `classifier` would become a Linear4bit (only decoders' heads are skipped).
            llm_int8_skip_modules=[*HEADS, rf".*{POOLER}"],  # a regex: any module path
        )
        target = torch.cuda.current_device() if device.type == "cuda" else "cpu"
        model = AutoModelForSequenceClassification.from_pretrained(
            path,
            num_labels=levels,
            quantization_config=bnb,
            dtype=torch.float32,
            device_map={"": target},
            # fp32 activations around the 4-bit weights: auto never picks FlashAttention here
            attn_implementation=backbone_attention(
                path, attn_implementation, device, torch.float32
            ),
        )
        if device.type == "cpu":
            _keep_trainable_4bit_layout(model)
    elif quantize == "none":
        dtype = amp if device.type == "cuda" and amp is not None else torch.float32
        model = AutoModelForSequenceClassification.from_pretrained(
            path,
            num_labels=levels,
            dtype=dtype,
            attn_implementation=backbone_attention(path, attn_implementation, device, dtype),
        ).to(device)
    else:
        raise ValueError(f"unknown quantize {quantize!r}: none or 4bit")
    model.config.pad_token_id = pad_token_id  # decoders pool the last token that is not padding
    return model


def _keep_trainable_4bit_layout(model: torch.nn.Module) -> None:
    """Turn off bitsandbytes' AVX512-BF16 CPU inference layout (bnb 0.50).

    On such CPUs the first forward in eval mode repacks each Linear4bit for a bf16 GEMV kernel
    and never unpacks it: later training steps then get zero gradients below that layer, eval
    logits drift from training ones (bf16), and layers narrower than 64 inputs fail outright.
    """
    for module in model.modules():
        if hasattr(module, BNB_CPU_PACKING):
            setattr(module, BNB_CPU_PACKING, False)


def prepare_for_training(model: PreTrainedModel, quantized: bool, checkpointing: bool) -> None:
    """qLoRA's preparation of a 4-bit base; gradient checkpointing that lets LoRA grads flow."""
    if quantized:  # fp32 norms and embeddings, frozen base
        from peft import prepare_model_for_kbit_training

        prepare_model_for_kbit_training(model, use_gradient_checkpointing=False)
    if not checkpointing:
        return
    kwargs = {"use_reentrant": False}  # non-reentrant: grads reach adapters on frozen inputs
    if hasattr(model, "activation_checkpointing_enable"):  # transformers >= 5.x renamed it
        model.activation_checkpointing_enable(activation_checkpointing_kwargs=kwargs)
    else:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs=kwargs)
    model.enable_input_require_grads()  # belt and braces should a reentrant checkpoint be used
    model.config.use_cache = False


def target_modules(model: torch.nn.Module, configured: Sequence[str]) -> list[str]:
    """The configured LoRA targets, or the default set for this architecture."""
    if configured:
        return list(configured)
    linear = {
        name.rsplit(".", 1)[-1]
        for name, module in model.named_modules()
        if isinstance(module, torch.nn.Linear)
    }
    for names in DEFAULT_TARGETS:
        if set(names) <= linear:
            return list(names)
    raise ValueError(
        f"no default LoRA targets for {type(model).__name__}; set teacher.target_modules "
        f"(linear layers: {sorted(linear)})"
    )


def head_modules(model: torch.nn.Module) -> list[str]:
    """The modules that train in full: the classification head, `classifier` (encoders) or
    `score` (decoders), and an encoder's [CLS] pooler where it has one."""
    names = {n for n, _ in model.named_children()}
    heads = [h for h in HEADS if h in names]
    # Sentence-embedding checkpoints (all-MiniLM, most sentence-transformers) never trained
    # the pooler: zero bias, tiny weights squash [CLS] to ~0, so the head starts blind and the
    # gradient reaching the adapters is tiny. Training it in full lets the head see [CLS].
    if any(n.endswith(POOLER) for n, _ in model.named_modules()):
        heads.append(POOLER)
    return heads
