"""A tiny, randomly initialised BLIP, built from its config: for the tests and the captioning bench.

Real BLIP weights come from the Hub, which tests (and air-gapped machines) cannot reach. This
builds a ``BlipForConditionalGeneration`` and a real ``BlipProcessor`` (a BERT WordPiece
tokenizer over a small word list, BLIP's image processor) locally and saves both with
``save_pretrained``, so every later step is the real load-and-generate path. Its captions are
words in a random order: the machinery is real, the model is not. ``shape="base"`` has the
layer sizes of Salesforce/blip-image-captioning-base (random weights), for throughput figures.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

_WORD_LIST = (
    "a an the of on in with and at near photo picture close up view cat dog cup coffee mug "
    "red blue green white black brown table wooden woman man person astronaut rocket street "
    "city tree sky building car flower garden kitchen plate food bowl chair room window"
)
WORDS = _WORD_LIST.split(" ")
SPECIALS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "[DEC]"]
SHAPES: dict[str, dict[str, Any]] = {
    "tiny": {  # seconds to build, milliseconds per image
        "text": {"hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 2,
                 "intermediate_size": 64},
        "vision": {"hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 2,
                   "intermediate_size": 64, "image_size": 64, "patch_size": 16},
    },
    "base": {  # the layer sizes of Salesforce/blip-image-captioning-base (ViT-B/16 at 384 px)
        "text": {"hidden_size": 768, "num_hidden_layers": 12, "num_attention_heads": 12,
                 "intermediate_size": 3072},
        "vision": {"hidden_size": 768, "num_hidden_layers": 12, "num_attention_heads": 12,
                   "intermediate_size": 3072, "image_size": 384, "patch_size": 16},
    },
}  # fmt: skip


def build_tiny_blip(
    out_dir: str | Path, shape: str = "tiny", seed: int = 0, min_new_tokens: int = 3
) -> Path:
    """Save a random BLIP and its processor to ``out_dir``; returns the directory.

    The generation config asks for at least ``min_new_tokens`` words and never emits the
    special tokens, so even a random model writes a caption (not an empty string).
    """
    import torch
    from transformers import BertTokenizer, BlipConfig, BlipForConditionalGeneration
    from transformers.models.blip.image_processing_pil_blip import BlipImageProcessorPil
    from transformers.models.blip.processing_blip import BlipProcessor

    sizes = SHAPES[shape]
    vocab = {token: i for i, token in enumerate([*SPECIALS, *WORDS])}
    ids = {token: vocab[token] for token in SPECIALS}
    tokenizer = BertTokenizer(vocab=vocab, bos_token="[DEC]")  # a fast (Rust) tokenizer in v5
    image_size = sizes["vision"]["image_size"]
    processor = BlipProcessor(
        image_processor=BlipImageProcessorPil(size={"height": image_size, "width": image_size}),
        tokenizer=tokenizer,
    )
    config = BlipConfig(
        text_config={
            **sizes["text"],
            "vocab_size": len(vocab),
            "max_position_embeddings": 64,
            "bos_token_id": ids["[DEC]"],
            "sep_token_id": ids["[SEP]"],
            "eos_token_id": ids["[SEP]"],
            "pad_token_id": ids["[PAD]"],
        },
        vision_config=sizes["vision"],
        projection_dim=sizes["text"]["hidden_size"],
    )
    torch.manual_seed(seed)
    model = BlipForConditionalGeneration(config).eval()
    model.generation_config.min_new_tokens = min_new_tokens
    model.generation_config.suppress_tokens = [ids[t] for t in SPECIALS if t != "[SEP]"]
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out)
    processor.save_pretrained(out)
    return out
