"""How much accelerator memory qLoRA training of a decoder teacher needs, from its config alone.

This follows what `searchrel.teacher.backbone` does: every Linear of the decoder blocks is NF4
with double quantisation (bitsandbytes: 4 bits per weight, one 8-bit absmax per block of 64,
one fp32 absmax per 256 of those); everything else (embeddings, norms, the K-class head) is
fp32, because peft's ``prepare_model_for_kbit_training`` upcasts it; LoRA adapters train in
fp32 with AdamW (weight, gradient and two moments); activations are 16-bit under autocast.
With gradient checkpointing only each block's input is kept for the backward pass, plus one
block's activations while it is recomputed. A sequence-classification head means no
vocabulary-sized logits, unlike causal-LM fine-tuning. The CUDA context and allocator slack
are not modelled: add about 1 GiB.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

NF4_BITS = 4
BLOCK = 64  # weights per first-level absmax
BLOCK2 = 256  # first-level absmax values per second-level (fp32) absmax
ACT_BYTES = 2  # bf16 / fp16 activations under autocast
FP32 = 4
ADAMW_BYTES_PER_TRAINABLE = 4 * FP32  # weight, gradient, exp_avg, exp_avg_sq


@dataclass(frozen=True)
class DecoderShape:
    """The parts of a Llama-style config that set memory."""

    vocab_size: int
    hidden_size: int
    intermediate_size: int
    num_hidden_layers: int
    num_attention_heads: int
    num_key_value_heads: int
    head_dim: int

    @classmethod
    def from_config(cls, config: Any) -> DecoderShape:
        heads = int(config.num_attention_heads)
        return cls(
            vocab_size=int(config.vocab_size),
            hidden_size=int(config.hidden_size),
            intermediate_size=int(config.intermediate_size),
            num_hidden_layers=int(config.num_hidden_layers),
            num_attention_heads=heads,
            num_key_value_heads=int(getattr(config, "num_key_value_heads", None) or heads),
            head_dim=int(getattr(config, "head_dim", None) or config.hidden_size // heads),
        )

    def linear_shapes(self) -> dict[str, tuple[int, int]]:
        """(in, out) of each Linear in one block: attention and gated MLP projections."""
        h, i = self.hidden_size, self.intermediate_size
        q, kv = self.num_attention_heads * self.head_dim, self.num_key_value_heads * self.head_dim
        return {
            "q_proj": (h, q),
            "k_proj": (h, kv),
            "v_proj": (h, kv),
            "o_proj": (q, h),
            "gate_proj": (h, i),
            "up_proj": (h, i),
            "down_proj": (i, h),
        }


def nf4_bytes(n_weights: int) -> float:
    """Packed 4-bit weights, an 8-bit absmax per block, an fp32 absmax per block of blocks and
    the fp32 offset of the nested quantisation (the code tables are shared by all layers)."""
    blocks = -(-n_weights // BLOCK)
    return n_weights * NF4_BITS / 8 + blocks + FP32 * -(-blocks // BLOCK2) + FP32


@dataclass
class MemoryEstimate:
    quantized_weights_gib: float
    other_weights_gib: float
    lora_and_optimizer_gib: float
    activations_gib: float
    total_gib: float
    lora_parameters: int
    quantized_parameters: int
    other_parameters: int

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def estimate_qlora_memory(
    shape: DecoderShape,
    *,
    levels: int,
    lora_r: int,
    target_modules: tuple[str, ...] = ("q_proj", "k_proj", "v_proj", "o_proj"),
    batch_size: int,
    seq_len: int,
    gradient_checkpointing: bool = True,
    quantize: str = "4bit",
) -> MemoryEstimate:
    """Training memory for ``quantize`` 4bit (qLoRA) or none (LoRA on a bf16 base, the
    baseline qLoRA is measured against: the whole base then loads in bf16)."""
    if quantize not in ("4bit", "none"):
        raise ValueError(f"unknown quantize {quantize!r}: none or 4bit")
    gib = 2.0**30
    linears = shape.linear_shapes()
    per_block = sum(a * b for a, b in linears.values())
    quantized = per_block * shape.num_hidden_layers
    if quantize == "4bit":
        quantized_bytes = sum(nf4_bytes(a * b) for a, b in linears.values())
        quantized_bytes *= shape.num_hidden_layers
    else:
        quantized_bytes = quantized * ACT_BYTES
    h = shape.hidden_size
    # Embeddings, two RMSNorms per block, the final norm, and the K-class head: all fp32.
    other = shape.vocab_size * h + (2 * shape.num_hidden_layers + 1) * h + h * levels
    lora = shape.num_hidden_layers * sum(lora_r * sum(linears[m]) for m in target_modules)
    lora += h * levels  # the head (no bias in Llama's `score`) trains too: modules_to_save
    act = _activation_bytes(shape, batch_size, seq_len, len(target_modules), gradient_checkpointing)
    parts = {
        "quantized_weights_gib": quantized_bytes / gib,
        "other_weights_gib": other * (FP32 if quantize == "4bit" else ACT_BYTES) / gib,
        "lora_and_optimizer_gib": lora * ADAMW_BYTES_PER_TRAINABLE / gib,
        "activations_gib": act / gib,
    }
    return MemoryEstimate(
        **{k: round(v, 3) for k, v in parts.items()},
        total_gib=round(sum(parts.values()), 3),
        lora_parameters=lora,
        quantized_parameters=quantized,
        other_parameters=other,
    )


def _activation_bytes(
    shape: DecoderShape, batch: int, seq: int, adapted: int, checkpointing: bool
) -> float:
    """Tensors a Llama block keeps for backward, with fused (SDPA) attention: no seq² term.

    Per token: the two norm outputs and the residual (3h), q, k, v (q + 2kv), the attention
    output (q), gate, up and their product (3i), the SiLU input (i), and one dropout copy of
    the input for each adapted module (h each).
    """
    h, i = shape.hidden_size, shape.intermediate_size
    q = shape.num_attention_heads * shape.head_dim
    kv = shape.num_key_value_heads * shape.head_dim
    per_token_block = (3 * h + 2 * q + 2 * kv + 4 * i + adapted * h) * ACT_BYTES
    tokens = batch * seq
    if checkpointing:  # every block's input, plus one block recomputed at a time
        return tokens * (shape.num_hidden_layers * h * ACT_BYTES + per_token_block)
    return tokens * shape.num_hidden_layers * per_token_block


# Llama-3-8B (meta-llama/Meta-Llama-3-8B config.json), the teacher of the Pinterest paper.
LLAMA_3_8B = DecoderShape(
    vocab_size=128256,
    hidden_size=4096,
    intermediate_size=14336,
    num_hidden_layers=32,
    num_attention_heads=32,
    num_key_value_heads=8,
    head_dim=128,
)
