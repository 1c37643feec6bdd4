"""Tables and KL plots for docs/RESULTS.md, from the run records under docs/runs/ (written by
scripts/replicate.sh). Usage: .venv/bin/python scripts/results.py  (prints markdown, writes docs/kl_*.png)."""
import json
from pathlib import Path

RUNS = Path(__file__).resolve().parent.parent / "docs" / "runs"
PAPER = {"jsb": -4.74, "nottingham": -2.94, "muse": -6.28, "piano": -8.20}
POSTER = {"jsb": -5.37, "nottingham": -3.18, "muse": -7.43, "piano": -7.57}
POSTER_SMALL = {"jsb": -5.04, "nottingham": -3.31, "muse": -7.56, "piano": -7.46}


def load(name):
    folder = RUNS / name
    if not (folder / "test.json").is_file():
        return None
    metrics = [json.loads(line) for line in (folder / "metrics.jsonl").read_text().splitlines() if line.strip()]
    config = json.loads((folder / "config.json").read_text())["config"]
    return {"test": json.loads((folder / "test.json").read_text()), "metrics": metrics, "config": config}


def fmt(value):
    return "" if value is None else f"{value:.2f}"


def main():
    print("| run | epochs | ELBO | test ELBO (paper norm.) | ± s.e. | test ELBO (total frames) | IWAE (paper / total) | paper | poster |")
    print("|---|---|---|---|---|---|---|---|---|")
    for folder in sorted(RUNS.iterdir()):
        r = load(folder.name)
        if r is None:
            continue
        t, ds = r["test"], folder.name.split("-")[1]
        iwae = f"{t['iwae']['per_sequence']:.2f} / {t['iwae']['total_frames']:.2f} (K={t['iwae']['k']})" if "iwae" in t else ""
        ref = POSTER_SMALL if folder.name.startswith("small") else POSTER
        print(f"| {folder.name} | {r['metrics'][-1]['epoch']} | {r['config']['elbo']} | {t['elbo']['per_sequence']:.3f} | "
              f"{t['elbo']['per_sequence_stderr']:.3f} | {t['elbo']['total_frames']:.3f} | {iwae} | "
              f"{fmt(PAPER.get(ds)) if folder.name.startswith('paper') and 'srnn' in folder.name else ''} | {fmt(ref.get(ds))} |")
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


if __name__ == "__main__":
    main()
