"""The ``ticket-nlp`` command: a thin Typer layer over data, train, evaluate and predict."""

from __future__ import annotations

import json
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console
from rich.table import Table

from ticket_nlp.config import LABELS, LABELS_ZH, data_path, model_dir

if TYPE_CHECKING:  # pragma: no cover
    from ticket_nlp.batch import Summary

app = typer.Typer(add_completion=False, no_args_is_help=True,
                  help="Label Chinese after-sales tickets and flag contradicted claimed reasons.")
console = Console()

DataOpt = Annotated[list[Path] | None, typer.Option("--data", help="Labelled CSV/TSV/XLSX; repeat to combine files.")]
TextCol = Annotated[str | None, typer.Option("--text-col", help="Column holding the description.")]
LabelCol = Annotated[str | None, typer.Option("--label-col", help="Column holding the label.")]
ClaimCol = Annotated[str | None, typer.Option("--claimed-col", help="Column holding the claimed reason.")]
ModelOpt = Annotated[str | None, typer.Option(
    "--model", help="Model directory (default: what `train` wrote) or MLflow URI (models:/ticket-nlp@champion, runs:/ID/model).")]


def _parse_label_map(items: list[str] | None) -> dict[str, str]:
    mapping = {}
    for item in items or []:
        src, sep, dst = item.partition("=")
        if not sep:
            raise typer.BadParameter(f"--label-map wants THEIRS=OURS, got {item!r}")
        mapping[src] = dst
    return mapping


def _load_data(paths: list[Path] | None, text_col, label_col, claimed_col, label_map):
    from ticket_nlp.data import DataError, LabelledSet, load_labelled

    try:
        parts = [load_labelled(p, text_col, label_col, claimed_col, label_map) for p in (paths or [data_path()])]
    except (DataError, FileNotFoundError) as err:
        console.print(f"[red]error:[/red] {err}")
        raise typer.Exit(2) from err
    return parts[0] if len(parts) == 1 else LabelledSet.concat(parts)


def _load_model(path: str | None):
    from ticket_nlp.model import ArtifactError, Classifier

    try:
        return Classifier.load(path)
    except ArtifactError as err:
        console.print(f"[red]error:[/red] {err}")
        raise typer.Exit(2) from err


ConfigOpt = Annotated[Path | None, typer.Option("--config", help="Experiment config YAML (configs/*.yaml); CLI flags override it.")]
EvalOpt = Annotated[list[Path] | None, typer.Option("--eval", help="Extra labelled file to measure on (all rows); repeatable.")]


def _load_config(path: Path | None):
    from ticket_nlp.experiment import ConfigError, ExperimentConfig, load_config

    if path is None:
        return ExperimentConfig()
    try:
        return load_config(path)
    except ConfigError as err:
        console.print(f"[red]error:[/red] {err}")
        raise typer.Exit(2) from err


def _eval_sets(paths: list[Path] | None) -> dict:
    """Extra evaluation sets by file stem (realdev.tsv -> realdev), every row of each."""
    sets = {}
    for p in paths or []:
        if p.stem in ("train", "valid", "test") or p.stem in sets:  # would overwrite another set's metrics
            console.print(f"[red]error:[/red] --eval {p}: its name {p.stem!r} is taken "
                          f"({', '.join(['train', 'valid', 'test', *sets])}); rename the file")
            raise typer.Exit(2)
        sets[p.stem] = _load_data([p], None, None, None, None)
    return sets


@app.command()
def train(
    data: DataOpt = None,
    out: Annotated[Path | None, typer.Option("--out", help="Model directory to write.")] = None,
    text_col: TextCol = None,
    label_col: LabelCol = None,
    claimed_col: ClaimCol = None,
    label_map: Annotated[list[str] | None, typer.Option("--label-map", help="THEIRS=OURS label name, repeatable.")] = None,
    compare: Annotated[bool | None, typer.Option(
        "--compare/--no-compare",
        help="Compare pipeline variants on valid and keep the best (default: on, or the config's `compare`).")] = None,
    config: ConfigOpt = None,
    track: Annotated[bool, typer.Option("--track/--no-track", help="Log the run to MLflow (off for offline use).")] = True,
    eval_files: EvalOpt = None,
    run_name: Annotated[str | None, typer.Option("--run-name", help="MLflow run name (default: the config's name).")] = None,
    unlabelled: Annotated[Path | None, typer.Option(
        "--unlabelled", help="Your own tickets without labels (any export `score` reads): the model also learns "
                             "from those it labels confidently (self-training).")] = None,
    unlabelled_text_col: Annotated[str | None, typer.Option(
        "--unlabelled-text-col", help="Description column of the --unlabelled export (default: found by header).")] = None,
) -> None:
    """Train on the shipped corpus (or your own labelled export), write the model, and log an MLflow run."""
    from ticket_nlp.train import train as run_training

    cfg = _load_config(config)
    mapping = {**cfg.data.label_map, **_parse_label_map(label_map)}
    dataset = _load_data(data or cfg.data.paths or None, text_col or cfg.data.text_col, label_col or cfg.data.label_col,
                         claimed_col or cfg.data.claimed_col, mapping)
    extra = _eval_sets(eval_files)
    if compare is None:
        compare = cfg.compare if cfg.compare is not None else config is None
    try:
        tickets = None
        if unlabelled is not None:
            from ticket_nlp.batch import read_export_texts

            tickets = read_export_texts(unlabelled, unlabelled_text_col)
        clf = run_training(dataset, params=cfg.params, compare=compare, log=console.print,
                           review_precision=cfg.thresholds["review_precision"],
                           mismatch_precision=cfg.thresholds["mismatch_precision"], unlabelled=tickets)
    except (ValueError, FileNotFoundError) as err:
        console.print(f"[red]error:[/red] {err}")
        raise typer.Exit(2) from err
    target = clf.save(out or model_dir())
    m = clf.metadata["metrics"]
    console.print(f"variant: {clf.metadata['variant']}")
    for split, figures in m.items():
        console.print(f"{split}: macro-F1 {figures['macro_f1']:.4f}, coverage {figures['coverage']:.3f}")
    console.print(f"model written to {target} (version {clf.version})")
    if not track:
        return
    from ticket_nlp.config import tracking_uri
    from ticket_nlp.tracking import log_training_run

    try:
        run_id = log_training_run(clf, dataset, target, cfg, eval_sets=extra, run_name=run_name)
    except Exception as err:  # the model is written; say what failed and how to go on offline
        console.print(f"[red]error:[/red] the model is written but logging to MLflow at {tracking_uri()} failed: "
                      f"{err}\n(use --no-track offline)")
        raise typer.Exit(1) from err
    if extra:  # measured and logged by the run: read the figures back rather than predict again
        import mlflow

        logged = mlflow.MlflowClient(tracking_uri()).get_run(run_id).data.metrics
        for name, part in extra.items():
            console.print(f"{name}: macro-F1 {logged[f'{name}_macro_f1']:.4f} ({len(part)} rows)")
    console.print(f"MLflow run {run_id} in {tracking_uri()}")
    console.print(f"  compare runs:  mlflow ui --backend-store-uri {tracking_uri()}")
    console.print(f"  promote it:    ticket-nlp promote {run_id}")


@app.command()
def tune(
    config: Annotated[Path, typer.Option("--config", help="Config with a `grid` of params to search.")] = Path("configs/tune.yaml"),
    data: DataOpt = None,
    best_config: Annotated[Path | None, typer.Option("--best-config", help="Write the best point as a train config here.")] = None,
    track: Annotated[bool, typer.Option("--track/--no-track", help="Log the search to MLflow (nested runs).")] = True,
) -> None:
    """Search a config's grid on valid (each point a nested MLflow run) and report the best."""
    from ticket_nlp.tune import best_config_yaml
    from ticket_nlp.tune import tune as run_search

    cfg = _load_config(config)
    dataset = _load_data(data or cfg.data.paths or None, cfg.data.text_col, cfg.data.label_col,
                         cfg.data.claimed_col, cfg.data.label_map)
    try:
        result = run_search(dataset, cfg, track=track, log=console.print)
    except ValueError as err:
        console.print(f"[red]error:[/red] {err}")
        raise typer.Exit(2) from err
    table = Table(title=f"{cfg.name}: {len(result.rows)} points, valid macro-F1")
    for col in ("params", "valid macro-F1", "train s", "run"):
        table.add_column(col)
    for row in sorted(result.rows, key=lambda r: -r["valid_macro_f1"]):
        mark = " (best)" if row is result.best else ""
        table.add_row(json.dumps(row["params"], ensure_ascii=False) + mark, f"{row['valid_macro_f1']:.4f}",
                      f"{row['train_seconds']:.1f}", row["run_id"] or "")
    console.print(table)
    console.print(f"best: {json.dumps(result.best['params'], ensure_ascii=False)} "
                  f"valid macro-F1 {result.best['valid_macro_f1']:.4f}")
    if result.parent_run_id:
        console.print(f"MLflow parent run {result.parent_run_id}")
    if best_config:
        best_config.write_text(best_config_yaml(cfg, result.best), encoding="utf-8")
        console.print(f"train it: ticket-nlp train --config {best_config}")


@app.command()
def promote(
    run_id: Annotated[str, typer.Argument(help="MLflow run id printed by `ticket-nlp train`.")],
    eval_files: EvalOpt = None,
    data: Annotated[Path | None, typer.Option("--data", help="Labelled file whose test split both models are scored on.")] = None,
    force: Annotated[bool, typer.Option("--force", help="Move the alias even if the candidate is worse (tagged).")] = False,
) -> None:
    """Register a run's model as `ticket-nlp` and move @champion to it if it is at least as good."""
    from ticket_nlp.config import CHAMPION_ALIAS, REGISTERED_MODEL
    from ticket_nlp.registry import DECIDING_METRIC
    from ticket_nlp.registry import promote as run_promotion

    corpus = _load_data([data] if data else None, None, None, None, None)
    sets = {"test": corpus.split("test") if corpus.splits else corpus, **_eval_sets(eval_files)}
    try:
        result = run_promotion(run_id, sets, force=force)
    except Exception as err:  # unknown run, a run without a model, an unreachable store
        console.print(f"[red]error:[/red] {err}")
        raise typer.Exit(2) from err
    table = Table(title=f"candidate {REGISTERED_MODEL} v{result.version} (run {run_id[:8]}) "
                        f"vs @{CHAMPION_ALIAS} v{result.champion_version or '-'}")
    for col in ("set", "metric", "champion", "candidate", "delta"):
        table.add_column(col, justify="left" if col in ("set", "metric") else "right")
    for row in result.table:
        fmt = lambda v: "-" if v is None else f"{v:.4f}"  # noqa: E731
        delta = "-" if row["delta"] is None else f"{row['delta']:+.4f}"
        name = f"[bold]{row['metric']}[/bold]" if row["metric"] == DECIDING_METRIC else row["metric"]
        table.add_row(row["set"], name, fmt(row["champion"]), fmt(row["candidate"]), delta)
    console.print(table)
    console.print(f"deciding metric: {DECIDING_METRIC}, candidate must be >= champion on every set")
    if result.promoted:
        colour = "yellow" if result.forced else "green"
        console.print(f"[{colour}]promoted[/{colour}]: {REGISTERED_MODEL} v{result.version} is @{CHAMPION_ALIAS} "
                      f"({result.reason}); load it as models:/{REGISTERED_MODEL}@{CHAMPION_ALIAS}")
    else:
        console.print(f"[red]not promoted[/red]: {result.reason}. --force overrides (and tags the version).")
        raise typer.Exit(1)


def _print_report(title: str, report: dict) -> None:
    table = Table(title=title)
    for col in ("label", "precision", "recall", "F1", "support"):
        table.add_column(col, justify="right" if col != "label" else "left")
    for lab, v in report["per_class"].items():
        table.add_row(lab, f"{v['precision']:.3f}", f"{v['recall']:.3f}", f"{v['f1']:.3f}", str(v["support"]))
    console.print(table)
    console.print(f"macro-F1 {report['macro_f1']:.4f}   accuracy {report['accuracy']:.4f}")
    if "coverage" in report:
        console.print(f"coverage at review threshold {report['coverage']:.3f} "
                      f"(accuracy there {report['accuracy_when_confident']:.3f}), "
                      f"calibration error {report['calibration_error']:.3f}")
    if "mismatch" in report:
        mm = report["mismatch"]
        console.print(f"mismatch precision {mm['precision']:.3f} recall {mm['recall']:.3f} "
                      f"({mm['flagged']} flagged, {mm['expected']} expected)")
    cm = Table(title="confusion (rows true, columns predicted)")
    cm.add_column("")
    for lab in LABELS:
        cm.add_column(lab[:8], justify="right")
    for lab, row in zip(LABELS, report["confusion"], strict=True):
        cm.add_row(lab, *map(str, row))
    console.print(cm)


@app.command()
def evaluate(
    data: DataOpt = None,
    split: Annotated[str, typer.Option(help="Split of the shipped corpus to score ('all' for every row).")] = "test",
    model: ModelOpt = None,
    text_col: TextCol = None,
    label_col: LabelCol = None,
    claimed_col: ClaimCol = None,
    baselines: Annotated[bool, typer.Option("--baselines", help="Also score keyword rules and fastText.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print the report as JSON.")] = False,
) -> None:
    """Score a model on labelled data: the corpus test split by default, or any labelled file."""
    from ticket_nlp.evaluate import evaluate as run_evaluation
    from ticket_nlp.evaluate import label_metrics

    clf = _load_model(model)
    dataset = _load_data(data, text_col, label_col, claimed_col, None)
    if dataset.splits and split != "all":
        dataset = dataset.split(split)
    report = run_evaluation(clf, dataset)
    if baselines:
        from ticket_nlp.baselines import FastTextClassifier, KeywordClassifier, PlainTfidfClassifier
        from ticket_nlp.train import ensure_splits

        train_set = ensure_splits(_load_data(None, None, None, None, None)).split("train")
        report["baselines"] = {
            "keyword rules": label_metrics(dataset.labels, KeywordClassifier().predict(dataset.texts)),
            "jieba TF-IDF + LR": label_metrics(dataset.labels, PlainTfidfClassifier().fit(
                train_set.texts, train_set.labels).predict(dataset.texts)),
            "fastText": label_metrics(dataset.labels, FastTextClassifier().fit(train_set.texts, train_set.labels)
                                      .predict(dataset.texts)),
        }
    if as_json:
        print(json.dumps(report, ensure_ascii=False, indent=2))
        return
    _print_report(f"{dataset.source} ({len(dataset)} rows)", report)
    if baselines:
        side = Table(title="side by side (macro-F1)")
        side.add_column("model")
        side.add_column("macro-F1", justify="right")
        side.add_column("gain of ticket-nlp", justify="right")
        side.add_row("ticket-nlp", f"{report['macro_f1']:.4f}", "")
        for name, b in report["baselines"].items():
            side.add_row(name, f"{b['macro_f1']:.4f}", f"{report['macro_f1'] - b['macro_f1']:+.4f}")
        console.print(side)


@app.command()
def predict(
    texts: Annotated[list[str], typer.Argument(help="One or more descriptions.")],
    claimed: Annotated[str | None, typer.Option("--claimed", help="The reason the buyer picked.")] = None,
    product: Annotated[str | None, typer.Option("--product", help="Product name or category (女装, 苹果 5斤): "
                                                "decides whether a size complaint is a fit or a quality problem.")] = None,
    model: ModelOpt = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print predictions as JSON lines.")] = False,
) -> None:
    """Label descriptions and check them against a claimed reason."""
    clf = _load_model(model)
    for text, pred in zip(texts, clf.predict(texts, [claimed] * len(texts), [product] * len(texts)), strict=True):
        if as_json:
            print(json.dumps({"text": text, **pred.to_dict(), "model_version": clf.version}, ensure_ascii=False))
            continue
        review = "  [yellow]needs review[/yellow]" if pred.needs_review else ""
        console.print(f"[bold]{text}[/bold]")
        console.print(f"  label: [bold]{pred.label}[/bold] ({LABELS_ZH[pred.label]})  "
                      f"confidence {pred.confidence:.2f}{review}")
        console.print("  " + "  ".join(f"{lab} {p:.2f}" for lab, p in pred.probabilities.items()))
        if product:
            console.print(f"  product: {product} -> {pred.product_family or 'not read (no known family)'}")
        if pred.evidence:
            console.print("  evidence: " + ", ".join(f"{e.term}[{e.start}:{e.end}] {e.weight:+.2f}" for e in pred.evidence))
        mm = pred.mismatch
        line = f"  claim: {mm.status}"
        if mm.claimed_reason:
            line += f" — {mm.claimed_reason} -> {'/'.join(mm.claimed_labels) or '?'}"
        if mm.status == "mismatch":
            line = f"[red]{line}, severity {mm.severity}: the text says {pred.label}[/red]"
        console.print(line)


class Engine(StrEnum):
    """Where `score` runs: this machine's cores, or a Spark cluster (or Spark in local mode)."""

    local = "local"
    spark = "spark"


@app.command()
def score(
    input_path: Annotated[str, typer.Argument(metavar="INPUT", help="Export: .csv .tsv .xlsx .parquet .jsonl "
                                              "(spark: Parquet/CSV/TSV, any URI Spark reads)")],
    output: Annotated[str | None, typer.Option("-o", "--output", help="Default: <input>.scored.<ext> "
                                               "(spark: <input>.scored.parquet, a directory)")] = None,
    text_col: Annotated[str | None, typer.Option("--text-col", help="Description column (default: found from headers).")] = None,
    reason_col: Annotated[str | None, typer.Option("--reason-col", help="Claimed-reason column.")] = None,
    product_col: Annotated[str | None, typer.Option("--product-col", help="Product name or category column "
                                                    "(default: 宝贝标题, 商品名称 … when present).")] = None,
    sheet: Annotated[str | None, typer.Option("--sheet", help="Sheet of an .xlsx file.")] = None,
    encoding: Annotated[str | None, typer.Option("--encoding", help="Force the CSV encoding (e.g. gbk).")] = None,
    model: ModelOpt = None,
    workers: Annotated[int | None, typer.Option("--workers", help="Processes (default: all cores).")] = None,
    chunk_rows: Annotated[int, typer.Option("--chunk-rows", help="Rows per chunk.")] = 5000,
    resume: Annotated[bool, typer.Option("--resume", help="Continue an interrupted run.")] = False,
    report: Annotated[Path | None, typer.Option("--report", help="Also write an HTML report here.")] = None,
    train_if_missing: Annotated[bool, typer.Option("--train-if-missing", help="Train on the shipped corpus if no model exists.")] = False,
    engine: Annotated[Engine, typer.Option("--engine", help="local: this machine; spark: a Spark cluster.")] = Engine.local,
    master: Annotated[str | None, typer.Option("--master", help="Spark master (default local[*]; under spark-submit, its own).")] = None,
    conf: Annotated[list[str] | None, typer.Option("--conf", help="Spark setting KEY=VALUE, repeatable.")] = None,
) -> None:
    """Score every row of a ticket export; rows in == rows out."""
    from ticket_nlp.batch import ScoreError, default_output, score_file, write_report
    from ticket_nlp.model import ArtifactError, Classifier

    if engine is Engine.spark:
        _score_with_spark(input_path, output, model, text_col, reason_col, product_col, sheet, encoding, chunk_rows,
                          resume, report, master, conf)
        return
    input_path, output = Path(input_path), Path(output) if output else None
    try:
        clf = Classifier.load(model)
    except ArtifactError as err:
        if not train_if_missing or model is not None:
            console.print(f"[red]error:[/red] {err}. Or pass --train-if-missing to train on the shipped corpus.")
            raise typer.Exit(2) from err
        console.print("no model yet: training on the shipped corpus (about a minute)")
        train(data=None, out=None, text_col=None, label_col=None, claimed_col=None, label_map=None, compare=False,
              config=None, track=False, eval_files=None, run_name=None)
        clf = Classifier.load()
    output = output or default_output(input_path)
    try:
        summary = score_file(clf, input_path, output, text_col=text_col, reason_col=reason_col,
                             product_col=product_col, sheet=sheet,
                             encoding=encoding, workers=workers, chunk_rows=chunk_rows, resume=resume)
    except ScoreError as err:
        console.print(f"[red]error:[/red] {err}")
        raise typer.Exit(2) from err
    _print_summary(summary, output)
    if report:
        write_report(summary, report, input_path)
        console.print(f"report written to {report}")


def _score_with_spark(input_uri: str, output: str | None, model: str | None, text_col: str | None,
                      reason_col: str | None, product_col: str | None, sheet: str | None, encoding: str | None,
                      chunk_rows: int,
                      resume: bool, report: Path | None, master: str | None, conf: list[str] | None) -> None:
    """``score --engine spark``: the same cells as the local engine, as partitioned Parquet."""
    from ticket_nlp.batch import ScoreError, write_report
    from ticket_nlp.model import ArtifactError
    from ticket_nlp.spark import default_output, parse_conf, score_spark

    if resume or sheet:
        console.print("[red]error:[/red] --resume and --sheet are for the local engine; a Spark run is all or nothing")
        raise typer.Exit(2)
    output = output or default_output(input_uri)
    try:
        summary = score_spark(input_uri, output, model=model, master=master, conf=parse_conf(conf),
                              text_col=text_col, reason_col=reason_col, product_col=product_col, encoding=encoding,
                              chunk_rows=chunk_rows)
    except (ScoreError, ArtifactError) as err:
        console.print(f"[red]error:[/red] {err}")
        raise typer.Exit(2) from err
    _print_summary(summary, output)
    if report:
        write_report(summary, report, Path(input_uri.rstrip("/")))
        console.print(f"report written to {report}")


def _print_summary(summary: Summary, output: object) -> None:
    d = summary.to_dict()
    table = Table(title=f"{d['rows']:,} rows -> {output} ({d['seconds']} s, {d['rows_per_second'] or 0:,} rows/s)")
    table.add_column("")
    table.add_column("rows", justify="right")
    for lab, n in sorted(summary.labels.items(), key=lambda kv: -kv[1]):
        table.add_row(lab, f"{n:,}")
    for status, n in summary.statuses.items():
        if status != "ok":
            table.add_row(f"[yellow]not scored: {status}[/yellow]", f"{n:,}")
    table.add_row("needs review", f"{d['needs_review']:,}")
    table.add_row("mismatch rate", f"{d['mismatch_rate']:.1%}")
    console.print(table)
    worst = [(k, v) for k, v in d["mismatch_by_reason"].items() if v["mismatch"]][:10]
    if worst:
        by = Table(title="mismatches per claimed reason")
        for col in ("claimed reason", "rows", "mismatch"):
            by.add_column(col)
        for k, v in worst:
            by.add_row(k, f"{v['rows']:,}", f"{v['mismatch']:,} ({v['mismatch'] / v['rows']:.0%})")
        console.print(by)


@app.command()
def reasons() -> None:
    """List the claimed-reason mapping in use."""
    from ticket_nlp.reasons import ReasonMap

    mapping = ReasonMap.load()
    table = Table(title=f"{len(mapping)} claimed reasons from {mapping.source}")
    table.add_column("claimed reason")
    table.add_column("label(s)")
    for reason, labels in mapping.display.items():
        table.add_row(reason, ", ".join(labels))
    console.print(table)



feedback_app = typer.Typer(no_args_is_help=True, help="Agents' corrections from the console and the API.")
app.add_typer(feedback_app, name="feedback")


@feedback_app.command("export")
def feedback_export(
    output: Annotated[Path, typer.Option("-o", "--output", help="CSV to write, in the corpus format.")] = Path("corrections.csv"),
    db: Annotated[str | None, typer.Option("--db", help="SQLAlchemy URL (default: $TICKET_NLP_FEEDBACK_DB or sqlite:///feedback.db).")] = None,
    split: Annotated[str, typer.Option("--split", help="Split the corrections join when you train on them.")] = "train",
) -> None:
    """Write every stored correction as training rows: `ticket-nlp train --data data/tickets.csv --data corrections.csv`."""
    from ticket_nlp.feedback import FeedbackStore

    store = FeedbackStore(db)
    n = store.export(output, split=split)
    console.print(f"{n:,} corrections -> {output} (split {split})")


@app.command()
def serve(
    host: Annotated[str, typer.Option("--host", help="Interface to bind (0.0.0.0 for all).")] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", help="TCP port.")] = 8000,
    workers: Annotated[int, typer.Option("--workers", help="Processes; one per core suits this CPU-bound API.")] = 1,
    model: Annotated[str | None, typer.Option("--model", help="Model directory or MLflow URI (models:/ticket-nlp@champion).")] = None,
    log_level: Annotated[str, typer.Option("--log-level", help="debug, info, warning, error.")] = "info",
) -> None:
    """Serve the real-time API (and the agent console) with uvicorn."""
    import os

    from ticket_nlp.api import run
    from ticket_nlp.model import is_model_uri

    source = model or os.environ.get("TICKET_NLP_MODEL") or str(model_dir())
    if not is_model_uri(source):  # a directory: fail here, not in every worker
        _load_model(Path(source))
    os.environ["TICKET_NLP_MODEL"] = source
    os.environ["TICKET_NLP_LOG_LEVEL"] = log_level
    console.print(f"serving {source} on http://{host}:{port} ({workers} worker(s)); docs at /docs")
    run(host, port, workers, log_level)


if __name__ == "__main__":
    app()
