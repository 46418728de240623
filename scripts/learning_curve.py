"""Would more labelled rows help? Macro-F1 of models trained on growing random shares of the train
split, measured on data none of them trained on.

    python scripts/learning_curve.py [--data data/tickets.csv] [--eval FILE] [--shares 0.25 0.5 0.75 1]

``--eval`` is a labelled file (a realdev-style TSV, a team's export); without it the data's own
valid split is used. Each share below 1 is drawn three times (seeds 0-2) and averaged. Two models
are trained per draw: the shipped pipeline's text-to-label steps (``build_pipeline``, its linear
model read directly, without the calibration that only reshapes probabilities) and the plain
jieba TF-IDF + logistic regression baseline. A curve still rising at share 1 says labelling more
rows of the same kind pays; a flat one says it does not.
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from ticket_nlp.baselines import PlainTfidfClassifier  # noqa: E402
from ticket_nlp.data import load_labelled  # noqa: E402
from ticket_nlp.evaluate import label_metrics  # noqa: E402
from ticket_nlp.model import build_pipeline  # noqa: E402

DRAWS = 3


def uncalibrated_pipeline():
    """The shipped pipeline with its linear model in place of the calibrated wrapper: the same
    labels up to calibration, five times faster to fit."""
    pipeline = build_pipeline()
    pipeline.steps[-1] = ("clf", pipeline.named_steps["clf"].estimator)
    return pipeline


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, default=ROOT / "data" / "tickets.csv")
    ap.add_argument("--eval", type=Path, help="labelled file to measure on (default: the data's valid split)")
    ap.add_argument("--shares", type=float, nargs="+", default=[0.25, 0.5, 0.75, 1.0])
    args = ap.parse_args()

    data = load_labelled(args.data)
    train = data.split("train")
    held_out = load_labelled(args.eval) if args.eval else data.split("valid")
    print(f"train {len(train)} rows; measured on {args.eval or 'the valid split'} ({len(held_out)} rows)")
    print(f"{'share':>6} {'rows':>7} {'pipeline':>9} {'plain':>7}")
    order = list(range(len(train)))
    for share in args.shares:
        scores: dict[str, list[float]] = {"pipeline": [], "plain": []}
        for seed in range(DRAWS if share < 1 else 1):
            random.Random(seed).shuffle(order)
            rows = sorted(order[:int(share * len(order))])
            texts, labels = [train.texts[i] for i in rows], [train.labels[i] for i in rows]
            for name, model in (("pipeline", uncalibrated_pipeline()), ("plain", PlainTfidfClassifier())):
                model.fit(texts, labels)
                scores[name].append(label_metrics(held_out.labels, list(model.predict(held_out.texts)))["macro_f1"])
        print(f"{share:6.2f} {len(rows):7d} {statistics.mean(scores['pipeline']):9.4f} "
              f"{statistics.mean(scores['plain']):7.4f}", flush=True)


if __name__ == "__main__":
    main()
