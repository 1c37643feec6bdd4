"""Tables and KL plots for docs/RESULTS.md, from the run records under docs/runs/ (written by
scripts/replicate.sh). Usage: .venv/bin/python scripts/results.py  (prints markdown, writes docs/kl_*.png);
scripts/results.py compare RECORDED.json NEW.json prints a rerun's test scores beside the recorded ones."""
import json
import statistics
from pathlib import Path

from pyro_srnn.runs import RunDir

RUNS = Path(__file__).resolve().parent.parent / "docs" / "runs"
PAPER = {"jsb": -4.74, "nottingham": -2.94, "muse": -6.28, "piano": -8.20}
POSTER = {"jsb": -5.37, "nottingham": -3.18, "muse": -7.43, "piano": -7.57}
POSTER_SMALL = {"jsb": -5.04, "nottingham": -3.31, "muse": -7.56, "piano": -7.46}
POSTER_MERGED = {"jsb": -5.64, "nottingham": -3.27, "muse": -7.64, "piano": -8.03}
DATASETS = ("nottingham", "jsb", "muse", "piano")
PAPER_SHAPE = {"d": 300, "a": 300, "hidden": 500, "seq_len": 100}  # a paper-size run that differs says so
BOULANGER = {  # docs/MODEL.md section 4: (Nottingham, JSB, MuseData, Piano), what the number is
    "STORN": ((-2.85, -6.91, -6.16, -7.13), "bound"),
    "TSBN": ((-3.67, -7.48, -6.81, -7.98), "bound"),
    "DMM": ((-2.96, -6.93, -6.99, -7.98), "ELBO (total frames)"),
    "DMM-Aug": ((-2.68, -6.29, -6.36, -7.59), "importance sampled"),
    "RNN-NADE": ((-2.31, -5.19, -5.60, -7.05), "exact"),
}


def load_metrics(name):
    return RunDir(RUNS / name).metrics()


def load(name):
    folder = RUNS / name
    if not (folder / "test.json").is_file():
        return None
    config = RunDir(folder).record()["config"]
    return {"test": json.loads((folder / "test.json").read_text()), "metrics": load_metrics(name), "config": config}


def fmt(value):
    return "" if value is None else f"{value:.2f}"


def main():
    print("| run | epochs | z, lr (other changes) | ELBO | test ELBO (paper norm.) | ± s.e. | test ELBO (total frames) | "
          "IWAE (paper / total) | paper | poster |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for folder in sorted(RUNS.iterdir()):
        r = load(folder.name)
        if r is None:
            continue
        t, ds = r["test"], folder.name.split("-")[1]
        iwae = f"{t['iwae']['per_sequence']:.2f} / {t['iwae']['total_frames']:.2f} (K={t['iwae']['k']})" if "iwae" in t else ""
        ref = POSTER_SMALL if folder.name.startswith("small") else POSTER
        paper_size = folder.name.split("-")[0] in ("paper", "tuned", "probe")
        c = r["config"]
        changes = [f"{k.replace('_', '-')} {c[k]}" for k, paper in PAPER_SHAPE.items() if paper_size and c[k] != paper]
        changes += [f"{k.replace('_', '-')} {c[k]}" for k in ("weight_decay", "dropout", "updates", "augment_transpose") if c.get(k)]
        changes += ["schedule fixed"] if c.get("schedule") == "fixed" else []
        if c.get("emission", "bernoulli") != "bernoulli":  # records from before pretraining existed had none
            changes += [f"emission {c['emission']}, nade-pretrain {c.get('nade_pretrain', 0)}"]
        changes += [f"model {c['model']}"] if c.get("model", "srnn") != "srnn" else []
        setting = f"{c['z']}, {c['lr']:g}" + (f" ({', '.join(changes)})" if changes else "")
        print(f"| {folder.name} | {r['metrics'][-1]['epoch']} | {setting} | {c['elbo']} | {t['elbo']['per_sequence']:.3f} | "
              f"{t['elbo']['per_sequence_stderr']:.3f} | {t['elbo']['total_frames']:.3f} | {iwae} | "
              f"{fmt(PAPER.get(ds)) if paper_size and folder.name.split('-')[2:3] == ['srnn'] else ''} | "
              f"{fmt(ref.get(ds)) if c['z'] and c.get('model', 'srnn') == 'srnn' else ''} |")  # an SRNN's numbers
    seeds_table()
    boulanger_table()
    merged_table()
    active_units_table()
    first_input_table()
    draws_table()
    plots()


def seed_runs(ds, variant, tuned=False):
    """The paper-size runs of one dataset and variant over seeds 0, 1, 2: the paper's configuration (seed 0 from
    lanes a-c, seeds 1, 2 from lane seeds) or, with ``tuned``, the one tuned on JSB (lane tuned)."""
    if tuned:
        names = [f"tuned-{ds}-{variant}-seed{seed}" for seed in (0, 1, 2)]
    else:
        first = {("jsb", "srnn"): "paper-jsb-srnn-analytic"}.get((ds, variant), f"paper-{ds}-{variant}")
        names = [first] + [f"paper-{ds}-{variant}-seed{seed}" for seed in (1, 2)]
    return [r for r in map(load, names) if r is not None]


def seed_values(runs, measure="elbo", normalisation="total_frames"):
    """One test measure of each run that has it (the IWAE bound only where it was computed)."""
    return [r["test"][measure][normalisation] for r in runs if measure in r["test"]]


def mean_sd(values):
    if len(values) < 2:
        return f"{values[0]:.2f} (1 seed)" if values else ""
    return f"{statistics.mean(values):.2f} ± {statistics.stdev(values):.2f}"


def seeds_table():
    """Mean ± standard deviation over seeds of the paper-size runs (test split; d_0 = z_0 = 0, u_1 = 0)."""
    print("\nPaper-size runs over seeds (mean ± standard deviation of the test ELBO; seeds 0, 1, 2 where run):\n")
    print("| dataset | variant | configuration | seeds | paper norm. | total frames | IWAE K=100 (total frames) | paper |")
    print("|---|---|---|---|---|---|---|---|")
    for variant in ("srnn", "boulanger"):
        for ds in DATASETS:
            for tuned in (False, True):
                runs = seed_runs(ds, variant, tuned)
                if not runs:
                    continue
                c = runs[0]["config"]
                label = f"z = {c['z']}, lr = {c['lr']:.0e}".replace("e-0", "e-") if tuned else "paper"
                print(f"| {ds} | {variant} | {label} | {len(runs)} | "
                      f"{mean_sd(seed_values(runs, normalisation='per_sequence'))} | "
                      f"{mean_sd(seed_values(runs))} | {mean_sd(seed_values(runs, 'iwae'))} | "
                      f"{fmt(PAPER[ds]) if variant == 'srnn' else ''} |")


def boulanger_table():
    print("\nVariant boulanger against the models that were measured on these rolls (ours: mean over the seeds "
          "run, total frames):\n")
    print("| model | " + " | ".join(DATASETS) + " | what |")
    print("|---|---|---|---|---|---|")
    for label, tuned in (("SRNN, ours", False), ("SRNN, ours, tuned", True)):
        for measure, what in (("elbo", "ELBO"), ("iwae", "IWAE bound, K = 100")):
            values = {ds: seed_values(seed_runs(ds, "boulanger", tuned), measure) for ds in DATASETS}
            if any(values.values()):
                cells = " | ".join(f"{statistics.mean(values[ds]):.2f}" if values[ds] else "" for ds in DATASETS)
                print(f"| {label} | {cells} | {what} (total frames) |")
    for name, (values, what) in BOULANGER.items():
        print(f"| {name} | " + " | ".join(f"{v:.2f}" for v in values) + f" | {what} |")


def merged_table():
    """One row per dataset, one column per merged run (merged-small: 10 epochs, merged-small-50: 50)."""
    runs = [f.name for f in sorted(RUNS.iterdir()) if f.name.startswith("merged") and (f / "test-jsb.json").is_file()]
    if not runs:
        return
    epochs = {name: load_metrics(name)[-1]["epoch"] for name in runs}
    print("\nThe small SRNN trained on the four Boulanger-variant datasets merged, on each dataset's test split "
          "(paper norm. / total frames):\n")
    print("| dataset | " + " | ".join(f"{name} ({epochs[name]} epochs)" for name in runs)
          + " | trained on the dataset alone (small, boulanger) | poster, merged |")
    print("|---|" + "---|" * (len(runs) + 2))
    for ds in DATASETS:
        cells = []
        for name in runs:
            t = json.loads((RUNS / name / f"test-{ds}.json").read_text())["elbo"]
            cells.append(f"{t['per_sequence']:.3f} / {t['total_frames']:.3f}")
        alone = load(f"small-{ds}-boulanger")
        alone = f"{alone['test']['elbo']['per_sequence']:.3f}" if alone else ""
        print(f"| {ds} | " + " | ".join(cells) + f" | {alone} | {POSTER_MERGED[ds]:.2f} |")


def active_units_table():
    print("\nActive latent units on the test split (`srnn evaluate RUN --split test --active-units`):\n")
    print("| run | KL per frame (test, paper norm.) | active units | active beyond the prior mean |")
    print("|---|---|---|---|")
    for path in sorted(RUNS.glob("*/test-active-units.json")):
        r = json.loads(path.read_text())
        print(f"| {path.parent.name} | {r['kl_term']['per_sequence']:.2f} | {r['active_units']} of {r['latent_dims']} | "
              f"{r['active_units_residual']} of {r['latent_dims']} |")

    for grid in sorted(RUNS.glob("grid-*/units")):
        print(f"\nThe same for the runs of {grid.parent.name} (test split), by z:\n")
        print("| z | runs | KL per frame (test) | active beyond the prior mean |")
        print("|---|---|---|---|")
        by_z = {}
        for path in grid.glob("*.json"):
            r = json.loads(path.read_text())
            by_z.setdefault(r["latent_dims"], []).append((r["kl_term"]["per_sequence"], r["active_units_residual"]))
        for z, rows in sorted(by_z.items()):
            kls, units = [k for k, _ in rows], [u for _, u in rows]
            print(f"| {z} | {len(rows)} | {min(kls):.2f} to {max(kls):.2f} | {min(units)} to {max(units)} of {z} |")


def first_input_table():
    """Variant srnn runs scored with u_1 = 0 (the model's definition, test.json), with the frame before each test
    sequence that the reference npz holds (what the reference code's test ELBO conditions on) and with u_1 = x_1,
    paper normalisation; a missing evaluation is left blank."""
    print("\nTest ELBO (paper norm.) by u_1 (`srnn evaluate RUN --split test --first-input previous|x1`):\n")
    print("| run | u_1 = 0 | u_1 = frame before (reference) | difference | u_1 = x_1 | difference | paper |")
    print("|---|---|---|---|---|---|---|")
    dirs = sorted({p.parent for kind in ("previous", "x1") for p in RUNS.glob(f"*/test-first-input-{kind}.json")})
    for run in dirs:
        zero = json.loads((run / "test.json").read_text())["elbo"]["per_sequence"]
        cells = []
        for kind in ("previous", "x1"):
            path = run / f"test-first-input-{kind}.json"
            elbo = json.loads(path.read_text())["elbo"]["per_sequence"] if path.exists() else None
            cells += [f"{elbo:.3f}", f"{elbo - zero:+.3f}"] if elbo is not None else ["", ""]
        print(f"| {run.name} | {zero:.3f} | {' | '.join(cells)} | {fmt(PAPER[run.name.split('-')[1]])} |")


def draws_table():
    """The Monte Carlo noise of one test evaluation (one draw of z per sequence), from ten draws of one run
    (lane draws), beside the spread over training seeds of the same configuration, which includes it."""
    folders = sorted(p.parent for p in RUNS.glob("*/draws"))
    if not folders:
        return
    print("\nTest ELBO over ten draws of z (`srnn evaluate RUN --split test --seed 1..10`), paper norm. / total frames:\n")
    print("| run | draws | mean over draws | sd of one draw | recorded evaluation | sd over training seeds |")
    print("|---|---|---|---|---|---|")
    for folder in folders:
        draws = [json.loads(p.read_text())["elbo"] for p in sorted(folder.glob("draws/seed*.json"))]
        if len(draws) < 2:
            continue
        columns = {key: [d[key] for d in draws] for key in ("per_sequence", "total_frames")}
        recorded = json.loads((folder / "test.json").read_text())["elbo"]
        _, ds, variant, *_ = folder.name.split("-")
        seeds = seed_runs(ds, variant, tuned=folder.name.startswith("tuned"))
        spread = " / ".join(f"{statistics.stdev(v):.3f}" for v in
                            (seed_values(seeds, normalisation="per_sequence"), seed_values(seeds))) if len(seeds) > 1 else ""
        print(f"| {folder.name} | {len(draws)} | "
              + " | ".join(" / ".join(f"{f(columns[k]):.3f}" for k in columns) for f in (statistics.mean, statistics.stdev))
              + f" | {recorded['per_sequence']:.3f} / {recorded['total_frames']:.3f} | {spread} |")


def plots():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    for variant in ("srnn", "boulanger"):
        runs = [(f.name, load(f.name)) for f in sorted(RUNS.iterdir()) if f.name.startswith("paper") and variant in f.name]
        runs = [(n, r) for n, r in runs if r]
        if not runs:
            continue
        fig, ax = plt.subplots(figsize=(7, 4))
        for name, r in runs:
            ax.plot([m["epoch"] for m in r["metrics"]], [m["train_kl"] for m in r["metrics"]], label=name)
        ax.set_yscale("log")  # the first epoch, before the model has learnt anything, dwarfs the rest
        ax.set_xlabel("epoch")
        ax.set_ylabel("KL per frame (nats, training)")
        ax.set_title(f"KL term per epoch, paper configuration, variant {variant}")
        ax.legend(fontsize=8)
        fig.tight_layout()
        fig.savefig(RUNS.parent / f"kl_{variant}.png", dpi=100)
        plt.close(fig)


def compare(recorded_path, new_path):
    """Print a rerun's test scores beside the recorded ones, with the difference (replicate.sh, after scoring)."""
    from pyro_srnn.runs import read_scores, score_field

    keys = ("elbo.total_frames", "elbo.per_sequence")
    new = read_scores(new_path, keys, optional=("iwae.total_frames", "iwae.per_sequence"))
    recorded = read_scores(recorded_path, keys, optional=("iwae.total_frames", "iwae.per_sequence")) \
        if Path(recorded_path).is_file() else {}
    print(f"{'test score':<20} {'recorded':>10} {'new':>10} {'new - recorded':>15}   ({new_path})")
    for key in keys + ("iwae.total_frames", "iwae.per_sequence"):
        value, before = score_field(new, key), score_field(recorded, key)
        if value is None:
            continue
        shown = "-" if before is None else f"{before:.4f}"
        change = "-" if before is None else f"{value - before:+.4f}"
        print(f"{key:<20} {shown:>10} {value:>10.4f} {change:>15}")


if __name__ == "__main__":
    import sys

    if sys.argv[1:2] == ["compare"] and len(sys.argv) == 4:
        compare(sys.argv[2], sys.argv[3])
    else:
        main()
