"""One self-contained HTML page for a run (curves, evaluation, samples to see and hear, sample statistics) or
for several runs side by side. Images and audio are embedded as data URIs, so the page opens from disk with
no server and no network; the metrics it plots are embedded too, as JSON, so a reader can check them."""
from __future__ import annotations

import base64
import html
import io
import json
import math
import tempfile
from pathlib import Path


from .errors import SRNNError
from .plot import draw_roll, plot_text, pyplot
from .runs import RunDir, read_scores, score_field

TEST_JSON_KEYS = ("elbo.per_sequence", "elbo.total_frames")  # what the page shows of srnn evaluate's test.json
TEST_JSON_IWAE_KEYS = ("iwae.k", "iwae.per_sequence", "iwae.total_frames")  # and of its IWAE bound, if any
AUDIO_RATE = 16_000  # mono 16 kHz keeps an embedded clip near 30 KB per second

STYLE = """
body { font: 15px/1.5 system-ui, sans-serif; max-width: 1100px; margin: 2em auto; padding: 0 1em;
       color: #222; background: #fff; }
@media (prefers-color-scheme: dark) { body { color: #ddd; background: #1b1b1b; } img { background: #fff; } }
h1 { font-size: 1.5em; } h2 { font-size: 1.2em; margin-top: 2em; border-bottom: 1px solid #8884; }
table { border-collapse: collapse; margin: 0.5em 0; } td, th { padding: 0.2em 0.7em; text-align: right; }
th { cursor: pointer; border-bottom: 1px solid #8886; } td:first-child, th:first-child { text-align: left; }
img { max-width: 100%; } figure { margin: 1em 0; } figcaption { font-size: 0.9em; }
.pair { display: grid; grid-template-columns: 1fr 1fr; gap: 1em; } audio { width: 100%; }
code { font-size: 0.9em; }
"""

SORT_SCRIPT = """
document.querySelectorAll('table.sortable th').forEach((th, i) => th.addEventListener('click', () => {
  const body = th.closest('table').tBodies[0], rows = Array.from(body.rows);
  const key = r => { const t = r.cells[i].textContent; const v = parseFloat(t); return isNaN(v) ? t : v; };
  const up = th.dataset.up !== '1'; th.dataset.up = up ? '1' : '0';
  rows.sort((a, b) => (key(a) > key(b) ? 1 : key(a) < key(b) ? -1 : 0) * (up ? 1 : -1));
  rows.forEach(r => body.appendChild(r));
}));
"""


# The page is one medium with two escaping rules: text and attributes through html.escape (_h), and data
# embedded in a script element through _json, which writes <, > and & as \u escapes, so no string in it can
# end the element or open a comment, and NaN and infinities as null, so strict parsers read it.
_h = html.escape


def _finite(value):
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {str(k): _finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(v) for v in value]
    return value


def _json(value) -> str:
    text = json.dumps(_finite(value), allow_nan=False)
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


def _data_script(value) -> str:
    return f'<script type="application/json" id="metrics">{_json(value)}</script>'


def _png(fig) -> str:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=90, bbox_inches="tight")
    pyplot().close(fig)
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode()


def _table(columns, rows, sortable=False) -> str:
    head = "".join(f"<th>{_h(str(c))}</th>" for c in columns)
    body = "".join("<tr>" + "".join(f"<td>{_h(str(v))}</td>" for v in row) + "</tr>" for row in rows)
    return f'<table{" class=sortable" if sortable else ""}><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>'


def _fmt(value) -> str:
    return f"{value:.4f}" if isinstance(value, float) else str(value)


def curves(metrics: list) -> str:
    """The training curves as one embedded PNG: ELBO and its parts, validation ELBO, KL temperature and
    learning rate, gradient norm, frames per second; every axis labelled with its unit."""
    plt = pyplot()
    epochs = [m["epoch"] for m in metrics]
    fig, axes = plt.subplots(2, 2, figsize=(11, 6.5))
    ax = axes[0, 0]
    ax.plot(epochs, [m["train_elbo"] for m in metrics], label="train ELBO")
    ax.plot(epochs, [m["train_reconstruction"] for m in metrics], label="train reconstruction", ls="--")
    valid = [(m["epoch"], m["valid_elbo"]) for m in metrics if "valid_elbo" in m]
    if valid:
        ax.plot(*zip(*valid), "o-", label="validation ELBO")
    ax.set(xlabel="epoch", ylabel="nats per frame", title="ELBO")
    ax.legend(fontsize=8)
    ax = axes[0, 1]
    ax.plot(epochs, [m["train_kl"] for m in metrics], color="tab:red")
    ax.set(xlabel="epoch", ylabel="KL, nats per frame", title="KL term (train)")
    for ax, (left, left_label, title), (right, right_label) in (
            (axes[1, 0], ("kl_temperature", "KL temperature", "schedules"), ("lr", "learning rate (dotted)")),
            (axes[1, 1], ("grad_norm", "mean gradient norm (before rescaling)", "gradients and speed"),
             ("frames_per_second", "frames per second (dotted)"))):
        ax.plot(epochs, [m[left] for m in metrics])
        ax.set(xlabel="epoch", ylabel=left_label, title=title)
        twin = ax.twinx()  # a second scale on the right
        twin.plot(epochs, [m[right] for m in metrics], color="tab:gray", ls=":")
        twin.set_ylabel(right_label)
    fig.tight_layout()
    return _png(fig)


def _roll_png(roll, title, grid) -> str:
    fig, ax = pyplot().subplots(figsize=(5.2, 2.2))
    draw_roll(ax, roll, title)
    ax.set_xlabel(f"frame ({grid.name})")
    return _png(fig)


def _audio(roll, grid, tempo) -> str:
    from data_prep.audio import render_midi, write_wav
    from data_prep.midi import roll_to_midi

    with tempfile.TemporaryDirectory() as folder:
        midi, wav = Path(folder) / "x.mid", Path(folder) / "x.wav"
        roll_to_midi(roll, midi, grid, bpm=tempo or 120.0)
        write_wav(render_midi(midi, sample_rate=AUDIO_RATE), wav, AUDIO_RATE, mono=True)
        return "data:audio/wav;base64," + base64.b64encode(wav.read_bytes()).decode()


def run_report(path, evaluate: bool = False, pieces: int = 3, steps: int = 48, seed: int = 0,
               audio: bool = True) -> str:
    """The page of one run directory."""
    from .sample import sample_statistics

    from .api import load_run
    from .evaluate import score_sequences

    run_dir = RunDir(path)
    metrics = run_dir.metrics()
    run = load_run(run_dir.path)
    if run.data is None:
        where = run.record.get("data")
        raise SRNNError(f"{run_dir.path}: " + (f"its data file {where} is missing" if where else
                                               "it does not name the data it was trained on")
                        + "; the report needs it for the test pieces and statistics (srnn prep makes it again)")
    record, grid = run.record, run.data.grid
    name = run.config.model_name
    lead = [f"<h1>{name} run <code>{_h(str(run_dir.path))}</code></h1>",
            f"<p>{_h(str(record.get('dataset')))} ({_h(str(grid.name))} frames, {_h(grid.rule)} rule), "
            f"checkpoint <code>{_h(run.checkpoint.name)}</code>, {len(metrics)} epochs recorded.</p>"]
    # what a reader comes for first: the numbers and the music; how the run was made last
    details = []
    config = run.config.own_dict()
    fingerprint = record.get("data_fingerprint") or {}
    details.append("<h2>Training</h2>" + (f'<img alt="training curves" src="{curves(metrics)}">' if metrics else
                                          "<p>No epochs recorded yet.</p>"))
    details.append(_data_script(metrics))
    details.append("<h2>Data</h2>" + _table(("", ""), [("file", record.get("data")),
                                                       ("sequences", json.dumps(fingerprint.get("sequences"))),
                                                       ("sha256 of the rolls", fingerprint.get("sha256"))]))
    details.append("<h2>Configuration</h2>" + _table(("field", "value"), [(k, str(v)) for k, v in config.items()]))
    parts = lead
    test_json = run_dir.path / "test.json"
    evaluation = read_scores(test_json, TEST_JSON_KEYS, optional=TEST_JSON_IWAE_KEYS) if test_json.is_file() \
        else None
    if evaluation is None and evaluate:
        scores = score_sequences(run.model, run.sequences("test"), iwae=0)
        evaluation = {"elbo": scores.per_frame(), "sequences": len(scores.lengths)}
    if evaluation:
        rows = [("ELBO", evaluation["elbo"])] + ([(f"IWAE, K={evaluation['iwae']['k']}", evaluation["iwae"])]
                                                 if "iwae" in evaluation else [])
        parts.append("<h2>Test evaluation</h2>" + _table(
            ("bound", "per sequence (paper)", "± s.e.", "total frames"),
            [(bound, _fmt(r["per_sequence"]), _fmt(r["per_sequence_stderr"]) if r["per_sequence_stderr"] is not None
              else "n/a", _fmt(r["total_frames"])) for bound, r in rows]))
    else:
        parts.append("<h2>Test evaluation</h2><p>Not computed: pass <code>--evaluate</code>.</p>")
    samples = run.sample(steps=steps, n=pieces, seed=seed)
    test = [s[:steps] for s in run.sequences("test") if len(s) >= steps][:pieces]
    figures = []
    for i in range(max(len(samples), len(test))):
        cells = []
        for roll, title in ((samples[i] if i < len(samples) else None, f"sample {i + 1}"),
                            (test[i] if i < len(test) else None, f"test piece {i + 1}, first {steps} frames")):
            if roll is None:
                cells.append("<figure></figure>")
                continue
            player = f'<audio controls src="{_audio(roll, grid, record.get("tempo_bpm"))}"></audio>' if audio else ""
            cells.append(f'<figure><img alt="{_h(title)}" src="{_roll_png(roll, title, grid)}">{player}'
                         f"<figcaption>{_h(title)}</figcaption></figure>")
        figures.append('<div class="pair">' + "".join(cells) + "</div>")
    parts.append(f"<h2>Samples beside test pieces</h2><p>{pieces} samples of {steps} frames (seed {seed}, "
                 "the default sampling of <code>srnn sample</code>), each beside a test opening of the same "
                 "length.</p>" + "".join(figures))
    rows = sample_statistics(run.model, run.sequences("test"), n=32, steps=400, seed=seed)
    parts.append("<h2>Sample statistics against the test data</h2><p>32 samples of 400 frames; ratio = samples / "
                 "data, OA = overlapping area of the two histograms (1: the same shape).</p>" + _table(
                     ("statistic", "test data", "samples", "ratio", "OA"),
                     [(name.replace("_", " "), f"{a:.3f}", f"{b:.3f}", f"{v:.2f}" if kind == "ratio" else "",
                       f"{v:.2f}" if kind == "OA" else "") for name, a, b, kind, v in rows]))
    parts += details
    return _page(f"{name} run {run_dir.path.name}", "".join(parts))


def runs_report(paths) -> str:
    """Several runs side by side: validation curves overlaid and one sortable table."""
    plt = pyplot()
    runs = [RunDir(p) for p in paths]
    fig, ax = plt.subplots(figsize=(10, 4.5))
    rows, all_metrics, handles, labels = [], {}, [], []
    for run in runs:
        metrics = run.metrics()
        all_metrics[str(run.path)] = metrics
        valid = [(m["epoch"], m["valid_elbo"]) for m in metrics if "valid_elbo" in m]
        if valid:
            handles.extend(ax.plot(*zip(*valid), marker="."))
            labels.append(plot_text(run.path.name))
        config = {"model": "srnn", **(run.record() or {}).get("config", {})}  # records before the TSBN: SRNNs
        if config["model"] != "srnn":  # the SRNN's sizes mean nothing there
            config = {k: v for k, v in config.items() if k not in ("a", "d")}
        rows.append((run.path.name, *(config.get(k, "") for k in ("model", "a", "d", "z", "seq_len", "elbo")),
                     len(metrics),
                     _fmt(max((v for _, v in valid), default=float("nan"))), _fmt(_test_elbo(run.path))))
    ax.set(xlabel="epoch", ylabel="validation ELBO, nats per frame", title="validation ELBO of each run")
    if len(runs) <= 20 and handles:
        ax.legend(handles, labels, fontsize=7, ncol=2)  # given, not collected: a name may start with "_"
    parts = [f"<h1>{len(runs)} runs</h1>", f'<img alt="validation curves" src="{_png(fig)}">',
             "<h2>Runs (click a column to sort)</h2>",
             _table(("run", "model", "a", "d", "z", "seq_len", "elbo", "epochs", "best valid ELBO", "test ELBO"), rows,
                    sortable=True),
             _data_script(all_metrics), f"<script>{SORT_SCRIPT}</script>"]
    return _page(f"{len(runs)} runs", "".join(parts))


def _test_elbo(folder: Path):
    """The test ELBO per frame (paper normalisation) a sweep trial (eval.json) or scripts/replicate.sh (test.json)
    left in a run directory, or an empty cell."""
    for name, key in (("eval.json", "test_elbo"), ("test.json", "elbo.per_sequence")):
        if (folder / name).is_file():
            return score_field(read_scores(folder / name, (key,)), key)
    return ""


def _page(title: str, body: str) -> str:
    return (f"<!doctype html><html lang=en><head><meta charset=utf-8><title>{html.escape(title)}</title>"
            f"<meta name=viewport content='width=device-width, initial-scale=1'><style>{STYLE}</style></head>"
            f"<body>{body}</body></html>\n")
