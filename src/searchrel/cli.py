"""The `searchrel` command line (also `python -m searchrel`): every stage is a subcommand, and
the KFP components run these same commands.

A mistake of the user's (a missing file, a bad config key, a table with the wrong columns)
is reported in one line and exit code 2, not a traceback.
"""

from __future__ import annotations

import json
import logging
import sys
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console

from searchrel.checkout import NotACheckoutError
from searchrel.config import Config, ConfigError, load_config

app = typer.Typer(
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    help="searchrel: an LLM relevance teacher distilled into a real-time student.",
)
data_app = typer.Typer(no_args_is_help=True, help="Import and prepare data.")
teacher_app = typer.Typer(no_args_is_help=True, help="Fine-tune and evaluate the teacher.")
features_app = typer.Typer(no_args_is_help=True, help="Build item and pair features.")
student_app = typer.Typer(no_args_is_help=True, help="Distil and evaluate the student.")
pipelines_app = typer.Typer(no_args_is_help=True, help="Compile and run the KFP pipeline.")
app.add_typer(data_app, name="data")
app.add_typer(teacher_app, name="teacher")
app.add_typer(features_app, name="features")
app.add_typer(student_app, name="student")
app.add_typer(pipelines_app, name="pipelines")

console = Console(stderr=True)
ConfigOpt = Annotated[
    Path | None,
    typer.Option("--config", "-c", help="YAML config (see configs/)", show_default=False),
]


def _cfg(path: Path | None) -> Config:
    return load_config(path)


def _print(result: dict[str, Any]) -> None:
    typer.echo(json.dumps(result, indent=2, default=str))


@data_app.command("import-crowdflower")
def import_crowdflower_cmd(
    files: Annotated[list[Path], typer.Argument(help="CrowdFlower CSV folds")],
    out: Annotated[Path, typer.Option(help="output directory")],
) -> None:
    """CrowdFlower CSVs -> items + judgments (K = 4), rejects quarantined with reasons."""
    from searchrel.data.crowdflower import import_crowdflower

    _print(import_crowdflower(files, out))


@data_app.command("import")
def import_cmd(
    out: Annotated[Path, typer.Option(help="directory for items/judgments/impressions.parquet")],
    items: Annotated[Path | None, typer.Option(help="items: .csv, .parquet or .jsonl")] = None,
    judgments: Annotated[Path | None, typer.Option(help="human judgments (same formats)")] = None,
    impressions: Annotated[Path | None, typer.Option(help="impression log (same formats)")] = None,
    map_: Annotated[
        list[str] | None,
        typer.Option(
            "--map",
            help="CONTRACT=SOURCE or TABLE.CONTRACT=SOURCE: read SOURCE as the contract's "
            "column (repeatable), e.g. --map query=search_term",
        ),
    ] = None,
    list_sep: Annotated[
        str,
        typer.Option(
            help="separator of list cells in CSV (board_titles ...); JSON arrays always work"
        ),
    ] = "",
    config: ConfigOpt = None,
) -> None:
    """Your own CSV / Parquet / JSONL tables -> the contract tables the pipeline reads."""
    from searchrel.data.importer import import_data

    given = {"items": items, "judgments": judgments, "impressions": impressions}
    sources = {k: v for k, v in given.items() if v is not None}
    _print(import_data(sources, out, map_ or [], _cfg(config).data.levels, list_sep))


@data_app.command("sample")
def sample_cmd(
    out: Annotated[Path, typer.Option(help="output directory")],
    seed: Annotated[int, typer.Option(help="random seed")] = 7,
) -> None:
    """Write the bundled Pinterest-shaped sample (items, judgments, impressions; K = 5)."""
    from searchrel.data.sample import build_sample

    _print(build_sample(out, seed=seed))


@data_app.command("ingest")
def ingest_cmd(
    source: Annotated[str, typer.Option(help="'sample' or a directory with the three tables")],
    items: Annotated[Path, typer.Option(help="items table to write")],
    judgments: Annotated[Path, typer.Option(help="judgments table to write")],
    impressions: Annotated[Path, typer.Option(help="impressions table to write")],
    summary: Annotated[Path | None, typer.Option(help="summary JSON to write")] = None,
    config: ConfigOpt = None,
) -> None:
    """Validate the input tables (quarantining bad rows) and write them where told."""
    from searchrel.data.ingest import ingest

    outputs = {"items": items, "judgments": judgments, "impressions": impressions}
    _print(ingest(source, outputs, _cfg(config), summary_path=summary))


@teacher_app.command("train")
def teacher_train_cmd(
    items: Annotated[Path, typer.Option(help="items.parquet")],
    judgments: Annotated[Path, typer.Option(help="judgments.parquet")],
    out: Annotated[Path, typer.Option(help="teacher directory to write")],
    config: ConfigOpt = None,
) -> None:
    """Fine-tune the cross-encoder teacher on human judgments (LoRA or full; one or an ensemble)."""
    from searchrel.teacher.train import train_teacher

    _print(train_teacher(items, judgments, out, _cfg(config)))


@teacher_app.command("ensemble")
def teacher_ensemble_cmd(
    members: Annotated[list[Path], typer.Argument(help="saved teacher directories (two or more)")],
    out: Annotated[Path, typer.Option(help="ensemble directory to write")],
) -> None:
    """Make one teacher of several trained ones: their probabilities are averaged."""
    from searchrel.teacher.ensemble import write_ensemble

    version = write_ensemble(out, members)
    _print({"stage": "teacher-ensemble", "teacher_version": version, "members": len(members)})


@teacher_app.command("evaluate")
def teacher_evaluate_cmd(
    model: Annotated[Path, typer.Option(help="teacher directory")],
    items: Annotated[Path, typer.Option(help="items.parquet")],
    judgments: Annotated[Path, typer.Option(help="judgments.parquet")],
    out: Annotated[Path, typer.Option(help="directory for metrics.json / metrics.md")],
    config: ConfigOpt = None,
) -> None:
    """Score the teacher on the held-out (test) queries."""
    from searchrel.teacher.evaluate import evaluate_teacher

    _print(evaluate_teacher(model, items, judgments, out, _cfg(config)))


@app.command("label")
def label_cmd(
    items: Annotated[Path, typer.Option(help="items.parquet")],
    impressions: Annotated[Path, typer.Option(help="impressions.parquet")],
    out: Annotated[Path, typer.Option(help="teacher_labels directory (date=/shard- files)")],
    teacher: Annotated[
        Path | None, typer.Option(help="teacher directory (not needed with --backend judge)")
    ] = None,
    date: Annotated[str | None, typer.Option(help="only this day (YYYY-MM-DD)")] = None,
    shards: Annotated[int | None, typer.Option(help="shards per date (config: 8)")] = None,
    shard: Annotated[
        list[int] | None, typer.Option(help="label only these shards (repeatable; 0-based)")
    ] = None,
    previous: Annotated[
        list[Path] | None, typer.Option(help="earlier teacher_labels to reuse where unchanged")
    ] = None,
    backend: Annotated[
        str | None, typer.Option(help="teacher (local model) or judge (remote LLM)")
    ] = None,
    judge_url: Annotated[str | None, typer.Option(help="the judge's server URL")] = None,
    config: ConfigOpt = None,
) -> None:
    """Label the logged impressions with soft labels, by shard; a rerun resumes."""
    from searchrel.config import load_config
    from searchrel.labeling.job import label_impressions

    overrides: dict[str, Any] = {"label": {}, "judge": {}}
    if shards is not None:
        overrides["label"]["shards"] = shards
    if backend is not None:
        overrides["label"]["backend"] = backend
    if judge_url is not None:
        overrides["judge"]["url"] = judge_url
    cfg = load_config(config, overrides=overrides)
    _print(
        label_impressions(
            teacher,
            items,
            impressions,
            out,
            cfg,
            date=date,
            shards=shard,
            previous=previous or [],
        )
    )


@app.command("label-collect")
def label_collect_cmd(
    shard_dir: Annotated[list[Path], typer.Option(help="a shard task's output (repeatable)")],
    out: Annotated[Path, typer.Option(help="teacher_labels directory to write")],
    config: ConfigOpt = None,
) -> None:
    """Gather the shard outputs of a fanned-out labeling run; fail if any shard is missing."""
    from searchrel.labeling.collect import collect_shards

    _print(collect_shards(shard_dir, out, pushgateway=_cfg(config).label.pushgateway))


@app.command("caption")
def caption_cmd(
    items: Annotated[Path, typer.Option(help="items.parquet")],
    out: Annotated[
        Path | None, typer.Option(help="directory for all four outputs (their default names)")
    ] = None,
    items_out: Annotated[
        Path | None, typer.Option(help="items with captions filled (default: OUT/items.parquet)")
    ] = None,
    captions: Annotated[
        Path | None, typer.Option(help="one row per item (default: OUT/captions.parquet)")
    ] = None,
    failures: Annotated[
        Path | None, typer.Option(help="failed images (default: OUT/caption_failures.parquet)")
    ] = None,
    summary: Annotated[
        Path | None, typer.Option(help="summary JSON (default: OUT/caption_summary.json)")
    ] = None,
    backend: Annotated[
        str | None, typer.Option(help="blip (local model) or vlm (endpoint)")
    ] = None,
    model: Annotated[str | None, typer.Option(help="BLIP model: dir, pkg:, hub id, s3/gs")] = None,
    vlm_url: Annotated[str | None, typer.Option(help="the VLM endpoint's URL")] = None,
    cache_dir: Annotated[str | None, typer.Option(help="caption cache directory ('': off)")] = None,
    batch_size: Annotated[int | None, typer.Option(help="images per BLIP batch")] = None,
    config: ConfigOpt = None,
) -> None:
    """Caption item images (BLIP or a VLM endpoint) so the teacher and student read them."""
    from searchrel.captions.job import CaptionOutputs, caption_items

    given = {
        "backend": backend,
        "model": model,
        "vlm_url": vlm_url,
        "cache_dir": cache_dir,
        "batch_size": batch_size,
    }
    overrides = {"captions": {k: v for k, v in given.items() if v is not None}}
    cfg = load_config(config, overrides=overrides)
    outputs = CaptionOutputs.resolve(out, items_out, captions, failures, summary)
    _print(caption_items(items, outputs, cfg))


@features_app.command("build")
def features_build_cmd(
    items: Annotated[Path, typer.Option(help="items.parquet")],
    judgments: Annotated[Path, typer.Option(help="judgments.parquet")],
    out: Annotated[Path, typer.Option(help="directory: item_store/ + student_features.parquet")],
    teacher_labels: Annotated[
        Path | None, typer.Option(help="teacher_labels directory or file")
    ] = None,
    impressions: Annotated[Path | None, typer.Option(help="impressions.parquet")] = None,
    config: ConfigOpt = None,
) -> None:
    """Build the item feature store and the student's training rows."""
    from searchrel.features.build import build_features

    _print(build_features(items, judgments, teacher_labels, impressions, out, _cfg(config)))


@student_app.command("train")
def student_train_cmd(
    features: Annotated[Path, typer.Option(help="student_features.parquet")],
    store: Annotated[Path, typer.Option(help="item_store directory")],
    out: Annotated[Path, typer.Option(help="student directory to write (the serving bundle)")],
    config: ConfigOpt = None,
) -> None:
    """Distil the teacher into the student and export it for serving."""
    from searchrel.student.train import train_student

    _print(train_student(features, store, out, _cfg(config)))


@student_app.command("evaluate")
def student_evaluate_cmd(
    model: Annotated[Path, typer.Option(help="student directory")],
    features: Annotated[Path, typer.Option(help="student_features.parquet")],
    out: Annotated[Path, typer.Option(help="directory for metrics.json / metrics.md")],
) -> None:
    """Score the exported student on the held-out (test) queries."""
    from searchrel.student.evaluate import evaluate_student

    _print(evaluate_student(model, features, out))


@student_app.command("gate")
def student_gate_cmd(
    candidate: Annotated[Path, typer.Option(help="the new student bundle")],
    items: Annotated[Path, typer.Option(help="items table (Parquet)")],
    judgments: Annotated[Path, typer.Option(help="human judgments table (Parquet)")],
    out: Annotated[Path, typer.Option(help="directory for gate.json")],
    serving: Annotated[
        str,
        typer.Option(
            help="the served bundle (directory or s3://, gs:// URI); 'none': nothing "
            "is served yet; '': what the GitOps overlay serves (--gitops-repo)"
        ),
    ] = "",
    gitops_repo: Annotated[str, typer.Option(help="GitOps repository; default deploy.repo")] = "",
    config: ConfigOpt = None,
) -> None:
    """Compare the candidate with the serving student on held-out human labels (deploy gate)."""
    from searchrel.gitops import served_uri
    from searchrel.student.gate import gate

    cfg = _cfg(config)
    if not serving:
        deploy_cfg = cfg.deploy.model_copy(update={"repo": gitops_repo} if gitops_repo else {})
        if not deploy_cfg.repo:
            raise typer.BadParameter("give --serving, or --gitops-repo to read it from the overlay")
        serving = served_uri(deploy_cfg)
    decision = gate(candidate, None if serving == "none" else serving, items, judgments, out, cfg)
    _print(decision)


@app.command("deploy")
def deploy_cmd(
    model_uri: Annotated[str, typer.Option(help="storage URI of the student bundle to serve")],
    gate: Annotated[Path, typer.Option(help="the gate decision (gate.json or its directory)")],
    repo: Annotated[str, typer.Option(help="GitOps repository; default: deploy.repo")] = "",
    overlay: Annotated[str, typer.Option(help="overlay to change; default: deploy.overlay")] = "",
    run: Annotated[str, typer.Option(help="pipeline run that made the model (in the commit)")] = "",
    config: ConfigOpt = None,
) -> None:
    """Commit the model URI to the GitOps overlay and push, if the gate passed."""
    from searchrel.gitops import deploy

    cfg = _cfg(config).deploy
    cfg = cfg.model_copy(update={k: v for k, v in (("repo", repo), ("overlay", overlay)) if v})
    _print(deploy(model_uri, gate, cfg, run=run))


@app.command("serve")
def serve_cmd(
    model_dir: Annotated[
        str, typer.Option(help="student bundle: a directory or an s3://, gs:// ... URI")
    ],
    host: Annotated[str | None, typer.Option(help="bind address (config: 127.0.0.1)")] = None,
    port: Annotated[int | None, typer.Option(help="HTTP port (config: 8080)")] = None,
    request_log: Annotated[Path | None, typer.Option(help="directory of the request log")] = None,
    request_log_url: Annotated[
        str | None, typer.Option(help="CloudEvents sink of the request log (a cluster)")
    ] = None,
    config: ConfigOpt = None,
) -> None:
    """Serve the student on KServe (V1 and V2 REST) until interrupted."""
    from searchrel.config import load_config
    from searchrel.serving.server import serve

    overrides = {"serve": {"request_log_url": request_log_url}} if request_log_url else None
    cfg = load_config(config, overrides=overrides)
    serve(model_dir, cfg, host=host, port=port, request_log_dir=request_log)


@app.command("request-log-receiver")
def request_log_receiver_cmd(
    out: Annotated[Path, typer.Option(help="directory of the request log (JSONL files)")],
    host: Annotated[str, typer.Option(help="bind address")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="HTTP port")] = 8090,
) -> None:
    """Receive the servers' request-log CloudEvents and write them where the drift job reads."""
    from searchrel.serving.cloudevents import run_receiver

    run_receiver(out, host, port)


@app.command("drift")
def drift_cmd(
    reference: Annotated[Path, typer.Option(help="student_features.parquet (training data)")],
    requests: Annotated[Path, typer.Option(help="request log directory")],
    out: Annotated[Path, typer.Option(help="directory for drift_report.html and drift.json")],
    state: Annotated[
        Path | None, typer.Option(help="the cooldown's state file (default: OUT/drift_state.json)")
    ] = None,
    config: ConfigOpt = None,
    submit_host: Annotated[
        str, typer.Option(help="KFP API: on a relabel decision, start daily_distillation there")
    ] = "",
    param: Annotated[
        list[str] | None, typer.Option(help="NAME=VALUE for that run (source=the drifted window)")
    ] = None,
    namespace: Annotated[str | None, typer.Option(help="Kubeflow profile namespace")] = None,
) -> None:
    """Compare what the student served with what it was trained on (Evidently); export the
    drift metrics for Prometheus and decide whether to relabel (and, with --submit-host, start
    the daily pipeline over the drifted window on the cluster)."""
    from searchrel.drift.job import drift_job

    cfg = _cfg(config)
    if submit_host:  # check the run's parameters before the (minutes-long) drift job
        from searchrel.pipelines.submit import package, parse_params, pipeline_arguments

        params = parse_params(param or [])
        pipeline_arguments(package("daily_distillation"), params, _config_yaml(config))
    result = drift_job(reference, requests, out, cfg, state)
    if submit_host and result["decision"]["relabel"]:
        from searchrel.pipelines.submit import submit

        result["submitted"] = submit(
            submit_host, "daily_distillation", params, _config_yaml(config), namespace=namespace
        )
    _print(result)


PipelineName = Annotated[
    str, typer.Option("--pipeline", "-p", help="teacher_training, daily_distillation, "
                      "drift_watch or relevance_loop")
]  # fmt: skip
ParamOpt = Annotated[
    list[str] | None, typer.Option("--param", help="NAME=VALUE, repeatable: a pipeline parameter")
]

ServiceAccountOpt = Annotated[
    str, typer.Option(help="Kubernetes service account of the run (manifests/pipelines)")
]


def _config_yaml(config: Path | None) -> str:
    if config is None:
        return ""
    load_config(config)  # a bad config fails here, in one line, not in the cluster
    return config.read_text(encoding="utf-8")


@pipelines_app.command("compile")
def pipelines_compile_cmd(
    out_dir: Annotated[Path | None, typer.Option(help="directory for <name>.yaml")] = None,
    config: Annotated[
        Path | None, typer.Option(help="YAML whose label section (shards, backend) is compiled in")
    ] = None,
) -> None:
    """Compile every pipeline to KFP IR YAML (default: the committed
    src/searchrel/pipelines/compiled/, with configs/cluster.yaml's label shards and backend)."""
    from searchrel.pipelines.catalog import COMPILED_DIR, cluster_label_config, compile_all

    for path in compile_all(out_dir or COMPILED_DIR, label=cluster_label_config(config)):
        typer.echo(path)


@pipelines_app.command("run")
def pipelines_run_cmd(
    local: Annotated[bool, typer.Option("--local", help="run with kfp.local's SubprocessRunner")],
    pipeline: PipelineName = "relevance_loop",
    param: ParamOpt = None,
    root: Annotated[Path, typer.Option(help="local pipeline root")] = Path("runs/pipeline"),
    config: Annotated[Path, typer.Option(help="YAML config")] = Path("configs/local.yaml"),
) -> None:
    """Run a pipeline here, every step a subprocess (on a cluster: `pipelines submit`)."""
    if not local:
        raise typer.BadParameter("use --local here, or `searchrel pipelines submit` for a cluster")
    from searchrel.pipelines.run_local import run_pipeline_local
    from searchrel.pipelines.submit import parse_params

    params = parse_params(param or [])
    _print(run_pipeline_local(pipeline, params, config, root))


@pipelines_app.command("submit")
def pipelines_submit_cmd(
    host: Annotated[str, typer.Option(help="KFP API endpoint, e.g. http://ml-pipeline-ui:80")],
    pipeline: PipelineName = "daily_distillation",
    param: ParamOpt = None,
    config: Annotated[Path | None, typer.Option(help="YAML config sent as config_yaml")] = None,
    experiment: Annotated[str, typer.Option(help="KFP experiment")] = "searchrel",
    namespace: Annotated[str | None, typer.Option(help="Kubeflow profile namespace")] = None,
    service_account: ServiceAccountOpt = "searchrel-pipeline-runner",
) -> None:
    """Start one run of a compiled pipeline on a Kubeflow Pipelines cluster."""
    from searchrel.pipelines.submit import parse_params, submit

    params = parse_params(param or [])
    _print(submit(host, pipeline, params, _config_yaml(config), experiment, namespace,
                  service_account=service_account))  # fmt: skip


@pipelines_app.command("schedule")
def pipelines_schedule_cmd(
    host: Annotated[str, typer.Option(help="KFP API endpoint, e.g. http://ml-pipeline-ui:80")],
    cron: Annotated[str, typer.Option(help="6-field cron, seconds first: '0 0 3 * * *'")],
    pipeline: PipelineName = "daily_distillation",
    param: ParamOpt = None,
    config: Annotated[Path | None, typer.Option(help="YAML config sent as config_yaml")] = None,
    experiment: Annotated[str, typer.Option(help="KFP experiment")] = "searchrel",
    namespace: Annotated[str | None, typer.Option(help="Kubeflow profile namespace")] = None,
    service_account: ServiceAccountOpt = "searchrel-pipeline-runner",
) -> None:
    """Create a recurring run (at most one at a time, no catch-up) of a compiled pipeline."""
    from searchrel.pipelines.submit import check_cron, parse_params, schedule

    check_cron(cron)  # before anything is read or contacted
    params = parse_params(param or [])
    _print(schedule(host, pipeline, cron, params, _config_yaml(config), experiment, namespace,
                    service_account=service_account))  # fmt: skip


@app.command("demo")
def demo_cmd(
    out: Annotated[Path, typer.Option(help="where the demo writes everything")] = Path("runs/demo"),
    config: Annotated[Path, typer.Option(help="YAML config")] = Path("configs/local.yaml"),
) -> None:
    """The whole loop on the bundled sample: pipeline, serving, requests, drift, summary."""
    from searchrel.demo import run_demo

    run_demo(out, config)


USER_ERRORS: tuple[type[Exception], ...] = (ConfigError, FileNotFoundError, NotACheckoutError)


def _user_errors() -> tuple[type[Exception], ...]:
    from searchrel.gitops import DeployError
    from searchrel.model_source import ModelSourceError
    from searchrel.tables import ContractError

    return (*USER_ERRORS, ContractError, ModelSourceError, DeployError)


def main(argv: list[str] | None = None) -> None:
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    try:
        app(args=argv, prog_name="searchrel")
    except _user_errors() as exc:
        console.print(f"[red]error:[/red] {exc}", highlight=False, soft_wrap=True)
        sys.exit(2)
