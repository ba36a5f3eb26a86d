"""The ``synthmed`` command line.

Stage commands (``ingest``, ``validate``, ``train-gan``, ``generate``, ``evaluate``,
``promote``) run one component directly: they are what ``dvc.yaml`` calls. ``run`` and ``demo``
run the Prefect pipeline flow, which asks DVC what is stale. A user mistake prints one line,
``synthmed: error: ...``, and exits with status 2.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from components.errors import SynthmedError

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    rich_markup_mode="rich",
    help="synthmed: validated, versioned synthetic medical images, and proof of whether they help.",
)

Profile = Annotated[
    str | None,
    typer.Option("--profile", "-p", help="Profile of params.yaml (default: its `profile:` key)."),
]
Params = Annotated[
    Path, typer.Option("--params", help="The configuration file.", dir_okay=False)
]

def _stage(name: str, profile: str | None, params: Path) -> dict[str, Any]:
    from components.config import load_config
    from components.stages import STAGES

    cfg = load_config(params, profile)
    metrics = STAGES[name](cfg)
    typer.echo(json.dumps(metrics, indent=2, default=str)[:4000])
    return metrics


def _example(text: str) -> str:
    return f"\n\n[bold]Example:[/bold] [cyan]{text}[/cyan]"


@app.command(help="Read images + metadata into a manifest, resized copies and uint8 caches."
             + _example("synthmed ingest --profile demo"))
def ingest(profile: Profile = None, params: Params = Path("params.yaml")) -> None:
    _stage("ingest", profile, params)


@app.command(help="Great Expectations checks; quarantine bad rows; rebalance; split."
             + _example("synthmed validate --profile demo"))
def validate(profile: Profile = None, params: Params = Path("params.yaml")) -> None:
    _stage("validate", profile, params)


@app.command("train-gan", help="Train the configured lesion GAN (gan.kind) and register it."
             + _example("synthmed train-gan --profile demo"))
def train_gan(profile: Profile = None, params: Params = Path("params.yaml")) -> None:
    _stage("train", profile, params)


@app.command(help="Sample a synthetic set, write it, version it with DVC and push it."
             + _example("synthmed generate --profile demo"))
def generate(profile: Profile = None, params: Params = Path("params.yaml")) -> None:
    _stage("generate", profile, params)


@app.command(help="Train the EfficientNet classifier on real vs real+synthetic; test on real."
             + _example("synthmed evaluate --profile demo"))
def evaluate(profile: Profile = None, params: Params = Path("params.yaml")) -> None:
    _stage("evaluate", profile, params)


@app.command(help="Register the best classifier; move `champion` only if it beats the incumbent."
             + _example("synthmed promote --profile demo"))
def promote(profile: Profile = None, params: Params = Path("params.yaml")) -> None:
    _stage("promote", profile, params)


@app.command(help="Run the whole pipeline as a Prefect flow; DVC skips what is up to date."
             + _example("synthmed run --profile full"))
def run(profile: Profile = None) -> None:
    from flows.pipeline import pipeline

    result = pipeline(profile=profile, root=".")
    _print_summary(result)


@app.command(help="Run the pipeline on the embedded ISIC images with the demo profile, then "
             "print where everything is." + _example("synthmed demo"))
def demo() -> None:
    from flows.pipeline import pipeline

    result = pipeline(profile="demo", root=".")
    _print_summary(result)


@app.command(help="Write deterministic polyp-like phantoms (image + mask) in the Kvasir-SEG "
             "layout." + _example("synthmed phantoms data/samples/polyp-phantoms --n 24"))
def phantoms(
    out: Annotated[Path, typer.Argument(help="Folder to write images/ and masks/ into.")],
    n: Annotated[int, typer.Option(help="Number of phantoms.")] = 24,
    seed: Annotated[int, typer.Option(help="Seed; the same seed writes the same files.")] = 0,
    size: Annotated[int, typer.Option(help="Side of each image (px).")] = 128,
) -> None:
    from components.data.phantoms import write_phantoms

    path = write_phantoms(out, n=n, seed=seed, size=size)
    typer.echo(f"wrote {n} phantoms to {path}")


@app.command(help="Validate params.yaml and print the resolved configuration of a profile."
             + _example("synthmed config --profile full"))
def config(profile: Profile = None, params: Params = Path("params.yaml")) -> None:
    import yaml

    from components.config import load_config

    cfg = load_config(params, profile)
    typer.echo(yaml.safe_dump(cfg.model_dump(mode="json"), sort_keys=False))


@app.command(help="List the versioned synthetic sets." + _example("synthmed versions"))
def versions(profile: Profile = None, params: Params = Path("params.yaml")) -> None:
    from rich.console import Console
    from rich.table import Table

    from components.config import load_config
    from components.versioning import list_versions

    cfg = load_config(params, profile)
    table = Table("name", "md5", "generator", "source manifest", "remote")
    for v in list_versions(Path.cwd(), cfg.versioning):
        table.add_row(
            str(v.get("name")),
            str(v.get("md5", ""))[:12],
            str(v.get("generator_registered_model", "")) + "/" + str(v.get("generator_model_version", "")),
            str(v.get("source_manifest_sha256", ""))[:12],
            str(v.get("remote", "")),
        )
    Console().print(table)


@app.command(help="Fetch one synthetic set version from the DVC remote."
             + _example("synthmed pull dcgan-64-demo-1a2b3c4d"))
def pull(
    name: Annotated[str, typer.Argument(help="Set version (see `synthmed versions`).")],
    profile: Profile = None,
    params: Params = Path("params.yaml"),
) -> None:
    from components.config import load_config
    from components.versioning import pull_set

    cfg = load_config(params, profile)
    typer.echo(f"pulled {pull_set(Path.cwd(), name, cfg.versioning)}")


@app.command(help="List the registered generators." + _example("synthmed gans"))
def gans() -> None:
    from components.generators.base import REGISTRY, kinds

    kinds("")  # imports every generator module
    for kind, cls in sorted(REGISTRY.items()):
        typer.echo(f"{kind:18s} {cls.modality:11s} {cls.output:12s} "
                   f"{'conditional' if cls.conditional else 'unconditional':14s}"
                   f"{(cls.__doc__ or '').strip().splitlines()[0]}")


@app.command(
    help="List the registered generators (the model zoo) with their metadata and their latest "
    "dataset card's figures; filter and rank them."
    + _example("synthmed models --modality endoscopy --output image+mask --rank-by kid")
)
def models(
    modality: Annotated[str | None, typer.Option(help="dermoscopy or endoscopy.")] = None,
    output: Annotated[str | None, typer.Option(help="image, image+label or image+mask.")] = None,
    kind: Annotated[str | None, typer.Option(help="Generator kind (see `synthmed gans`).")] = None,
    rank_by: Annotated[
        str | None,
        typer.Option("--rank-by", help="Best first by a card figure: fid, kid, memorized_share "
                     "(lower is better), precision, recall, density, coverage."),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the rows as JSON.")] = False,
    params: Params = Path("params.yaml"),
) -> None:
    from rich.console import Console

    from components.experiments.reporting import fmt
    from components.zoo import connect, list_generators

    connect(params=params)
    rows = list_generators(modality, output, kind, rank_by)
    if as_json:
        typer.echo(json.dumps(rows, indent=2))
        return
    header = ["model", "kind", "modality", "output", "size", "training data", "licence", "FID",
              "KID", "precision", "recall", "coverage", "memorized", "features"]  # fmt: skip
    cells = [[f"{r['name']}/{r['version']}" + (f" @{','.join(r['aliases'])}" if r["aliases"] else ""),
              str(r["kind"]), str(r["modality"]), str(r["output"]), str(r["image_size"]),
              str(r["training_data"] or "")[:48], str(r["licence"] or "")[:24],
              fmt(r["fid"]), fmt(r["kid"], 4), fmt(r["precision"]), fmt(r["recall"]),
              fmt(r["coverage"]), fmt(r["memorized_share"]), str(r["features"] or "")]
             for r in rows]  # fmt: skip
    console = Console(width=max(Console().width, 200))
    console.print(_table(f"Registered generators ({len(rows)})", header, cells))


@app.command(
    help="Draw images from any registered generator into a folder synthmed ingests (ISIC legacy "
    "JPEG+JSON for lesions, Kvasir-SEG images/ + masks/ for polyps), with a dataset card."
    + _example("synthmed sample synthmed-acgan-64/1 -n 100 --out synthetic/ --label malignant")
)
def sample(
    model: Annotated[str, typer.Argument(help="NAME, NAME@alias or NAME/VERSION (see `synthmed models`).")],
    n: Annotated[int, typer.Option("-n", help="Images to draw.")] = 100,
    out: Annotated[Path, typer.Option("--out", help="New (or empty) folder to write.")] = Path("sampled"),
    label: Annotated[str | None, typer.Option(help="benign or malignant (conditional generators).")] = None,
    seed: Annotated[int, typer.Option(help="The same seed draws the same images.")] = 0,
    params: Params = Path("params.yaml"),
) -> None:
    from components.zoo import connect
    from components.zoo import sample as draw

    connect(params=params)
    done = draw(model, n, out, label=label, seed=seed)
    typer.echo(f"wrote {len(done.images)} images from {done.model} to {done.path} "
               f"(card: {done.path / 'CARD.md'})")  # fmt: skip


@app.command(
    help="Rebuild a registered classifier from its lineage (git commit, config, data manifest "
    "hash, synthetic set version, seed) in a temporary git worktree and compare its metrics with "
    "the registered ones." + _example("synthmed reproduce models:/synthmed-lesion-classifier@champion")
)
def reproduce(
    model: Annotated[str, typer.Argument(help="models:/NAME/VERSION or models:/NAME@alias.")],
    keep: Annotated[Path | None, typer.Option(help="Copy the rebuild's build/ outputs here.")] = None,
    params: Params = Path("params.yaml"),
) -> None:
    from rich.console import Console

    from components.reproduce import reproduce as rebuild
    from components.zoo import connect

    connect(params=params)
    done = rebuild(model, Path.cwd(), keep)
    lin = done.lineage
    console = Console(width=max(Console().width, 120))
    console.print(f"{lin.model}: arm '{lin.arm}' at commit {lin.commit[:12]}"
                  + (" (+dirty: the run had uncommitted changes)" if lin.dirty else "")
                  + f", data {lin.manifest_sha256[:12]}, set {lin.set_version or 'none'}, seed {lin.seed}")  # fmt: skip
    cells = [[c.metric, f"{c.registered:.6f}", f"{c.reproduced:.6f}",
              f"{abs(c.registered - c.reproduced):.2e}", f"{c.tolerance:g}",
              "identical" if c.identical else ("ok" if c.ok else "DIFFERENT")]
             for c in done.comparisons]  # fmt: skip
    console.print(_table("registered vs reproduced (test metrics)",
                         ["metric", "registered", "reproduced", "|diff|", "tolerance", ""], cells))  # fmt: skip
    console.print(f"tolerance: {done.tolerance_note}")
    if not done.ok:
        print(f"synthmed: {lin.model} was not reproduced within the tolerance", file=sys.stderr)
        raise typer.Exit(1)
    console.print(f"reproduced {lin.model}")


experiment_app = typer.Typer(
    no_args_is_help=True, help="Studies that judge whether synthetic data helps."
)
app.add_typer(experiment_app, name="experiment")


Workers = Annotated[
    int, typer.Option("--workers", help="Study steps run at the same time (one device: 1).")
]


@experiment_app.command(
    "lesions",
    help="The lesion GAN study: each GAN of the zoo, image metrics, and the EfficientNet "
    "classifier on real / augmented / +synthetic / balanced / synthetic-only arms, several seeds."
    + _example("synthmed experiment lesions --profile demo"),
)
def experiment_lesions(
    profile: Profile = None, params: Params = Path("params.yaml"), workers: Workers = 1
) -> None:
    from flows.studies import run_study

    _print_lesion_study(run_study("lesions", profile, str(params), workers))


@experiment_app.command(
    "polyps",
    help="SinGAN-Seg on each polyp image, style transfer, and the UNet++ segmentation study "
    "(k-fold, held-out test, small-data sweep)."
    + _example("synthmed experiment polyps --profile demo"),
)
def experiment_polyps(
    profile: Profile = None, params: Params = Path("params.yaml"), workers: Workers = 1
) -> None:
    from flows.studies import run_study

    _print_polyp_study(run_study("polyps", profile, str(params), workers))


def _table(title: str, header: list[str], cells: list[list[str]]) -> Any:
    from rich.table import Table

    table = Table(title=title)
    for i, name in enumerate(header):
        table.add_column(name, justify="left" if i == 0 else "right", no_wrap=i > 0)
    for row in cells:
        table.add_row(*row)
    return table


def _print_lesion_study(result: dict[str, Any]) -> None:
    """The arm table (mean ± std over seeds), the generator table and where the report is."""
    from rich.console import Console

    from components.experiments.lesions import TERMINAL_GAN_COLUMNS, arm_table, gan_table

    gan_header, gan_cells = gan_table(result["sets"])
    keep = [gan_header.index(c) for c in TERMINAL_GAN_COLUMNS]
    console = Console(width=max(Console().width, 130))
    console.print(_table(f"Lesion study ({result['profile']}): test metrics, mean ± std over seeds",
                         *arm_table(result["rows"])))  # fmt: skip
    console.print(_table("Generators (full table with PIQA metrics in the report)",
                         [gan_header[i] for i in keep], [[r[i] for i in keep] for r in gan_cells]))  # fmt: skip
    console.print("* trained on a set that failed memorization (not published)")
    console.print(f"report: {result['report']}  ({result.get('seconds', 0):.0f} s)")


def _print_polyp_study(result: dict[str, Any]) -> None:
    """The results table (mean ± std over folds), the promotion and where the report is."""
    from rich.console import Console

    from components.experiments.reporting import mean_pm_std
    from components.segmenter import METRICS

    cells = [[r["arm"], f"{r['train_images']:.0f}", *(mean_pm_std(r, m) for m in METRICS)]
             for r in result["rows"]]  # fmt: skip
    console = Console(width=max(Console().width, 130))
    console.print(_table(f"Polyp study ({result['profile']}): test metrics, mean ± std over folds",
                         ["arm", "train", *METRICS], cells))  # fmt: skip
    promo = result["promotion"]
    console.print(f"best: {promo['arm']} -> {promo.get('registered_model')} v{promo.get('version')} "
                  f"({promo['reason']})")  # fmt: skip
    console.print(f"report: {result['report']}  ({result.get('seconds', 0):.0f} s)")


def _print_summary(result: dict[str, Any]) -> None:
    from rich.console import Console
    from rich.table import Table

    from components.classifier import TEST_METRICS
    from components.config import load_config
    from components.tracking import tracking_uri

    console = Console()
    cfg = load_config("params.yaml", result["profile"])
    table = Table("stage", "status", title=f"synthmed pipeline ({result['profile']})")
    for stage, r in result["stages"].items():
        table.add_row(stage, "up to date (skipped)" if r["skipped"] else "ran")
    console.print(table)
    stages = result["stages"]
    uri = tracking_uri(cfg.tracking)
    console.print(f"[bold]MLflow runs:[/bold] {uri}  (open the UI: "
                  f"[cyan]mlflow ui --backend-store-uri {uri}[/cyan])")
    promo = stages.get("promote", {}).get("metrics") or {}
    if promo:
        m = promo.get("metrics", {})
        shown = ", ".join(f"{k}={m[k]:.3f}" for k in
                          TEST_METRICS
                          if k in m)
        console.print(
            f"[bold]Champion:[/bold] {promo['registered_model']} version "
            f"{promo['champion_version']} (this run: version {promo['version']}, arm "
            f"'{promo['arm']}', {'promoted' if promo['promoted'] else 'not promoted'}: "
            f"{promo['reason']}); {shown}"
        )
    gen = stages.get("generate", {}).get("metrics") or {}
    if gen:
        console.print(
            f"[bold]Synthetic set:[/bold] {gen['set']} (DVC md5 {gen['md5']}); a colleague gets "
            f"it with [cyan]git pull && dvc pull {cfg.versioning.sets_dir}/{gen['set']}.dvc[/cyan]"
            f" or [cyan]synthmed pull {gen['set']}[/cyan]"
        )


def _resume_hint() -> str:
    import shlex

    return "synthmed " + " ".join(shlex.quote(a) for a in sys.argv[1:])


def main() -> None:
    """Entry point: usage errors in click's words (exit 2), user mistakes in one line (exit 2),
    Ctrl-C in one line with the command that resumes (exit 130); never a traceback for those."""
    from typer.exceptions import Abort, TyperException

    from components import offline

    offline.apply()
    try:
        code = app(standalone_mode=False)
    except SynthmedError as exc:
        print(f"synthmed: error: {exc}", file=sys.stderr)
        sys.exit(2)
    except TyperException as exc:  # click's usage errors (typer vendors its own click)
        exc.show()
        sys.exit(exc.exit_code)
    except (KeyboardInterrupt, Abort):
        code = 130
    if code == 130:  # typer turns Ctrl-C into exit status 130
        print(f"synthmed: interrupted; resume with: {_resume_hint()}", file=sys.stderr)
    sys.exit(code if isinstance(code, int) else 0)


if __name__ == "__main__":
    main()
