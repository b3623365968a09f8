"""Plot a DyHPO study: the race, the learning curves and the anytime incumbent.

Runs the quickstart's study (a PyTorch MLP on scikit-learn's digits; see
``examples/quickstart.py``) with an epoch progress bar, then saves the three DyHPO plots of
:mod:`optuna_dyhpo.visualization` as HTML and PNG, and into the study for optuna-dashboard.

Run:
    python examples/visualize.py            # 150 epochs, about a minute on 2 CPU cores
    python examples/visualize.py --smoke    # 20 epochs, a few seconds plus PNG export

PNG export needs kaleido >= 1.0 and a Chrome/Chromium it can find (Debian: ``apt-get install
chromium``); without them the HTML files and the dashboard plots are still written.

Then:
    optuna-dashboard sqlite:///visualize_output/dyhpo.db --artifact-dir visualize_output/artifacts
"""

from __future__ import annotations

import argparse
from pathlib import Path
import sys
from typing import Any
import warnings

import optuna
from optuna_dashboard import save_plotly_graph_object
import torch

from optuna_dyhpo import StopAfterEpochs
from optuna_dyhpo import epochs_spent
from optuna_dyhpo.visualization import plot_incumbent
from optuna_dyhpo.visualization import plot_learning_curves
from optuna_dyhpo.visualization import plot_race

sys.path.insert(0, str(Path(__file__).resolve().parent))
from quickstart import create_fresh_study  # noqa: E402
from quickstart import load_data  # noqa: E402
from quickstart import make_objective  # noqa: E402

PLOTS = {"race": plot_race, "learning_curves": plot_learning_curves, "incumbent": plot_incumbent}


def save_plots(study: optuna.Study, out: Path, png: bool = True) -> list[Path]:
    """Write ``<name>.html`` (and ``<name>.png``) for the three plots; save them in the study.

    Returns:
        The files written.
    """
    written: list[Path] = []
    figures = {name: plot(study, target_name="accuracy") for name, plot in PLOTS.items()}
    for name, fig in figures.items():
        # "directory": one plotly.min.js next to the HTML files, so they also open offline.
        fig.write_html(out / f"{name}.html", include_plotlyjs="directory")
        written.append(out / f"{name}.html")
        save_plotly_graph_object(study, fig, graph_object_id=f"plot_{name}")
    if png:
        written += _write_pngs(figures, out)
    return written


def _write_pngs(figures: dict[str, Any], out: Path, attempts: int = 2) -> list[Path]:
    """``<name>.png`` for each figure through kaleido's headless browser; a failed attempt
    (the browser did not start or answer, as can happen on a busy machine) is retried once
    with a fresh browser. Without kaleido or a browser the HTML and dashboard still work."""
    for attempt in range(1, attempts + 1):
        written: list[Path] = []
        try:
            import kaleido

            kaleido.start_sync_server(silence_warnings=True)  # one browser for all figures
            try:
                with warnings.catch_warnings():
                    warnings.filterwarnings("ignore", message="The kopts argument is ignored")
                    for name, fig in figures.items():
                        fig.write_image(out / f"{name}.png", width=1000, height=560)
                        written.append(out / f"{name}.png")
            finally:
                kaleido.stop_sync_server(silence_warnings=True)
            return written
        except ImportError as err:
            print(f"PNG export skipped ({type(err).__name__}: {err})", file=sys.stderr)
            return []
        except Exception as err:
            what = "PNG export skipped" if attempt == attempts else "PNG export retried"
            print(f"{what} ({type(err).__name__}: {err})", file=sys.stderr)
    return []
    return written


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--smoke", action="store_true", help="tiny budget, for the tests")
    parser.add_argument("--output", default="visualize_output", help="folder for db/plots")
    parser.add_argument("--no-png", action="store_true", help="skip the PNG export")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    max_budget = 5 if args.smoke else 20
    total = 20 if args.smoke else 150
    out = Path(args.output)
    torch.set_num_threads(1)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = create_fresh_study("dyhpo-visualize", out, max_budget, args.seed)
    storage = f"sqlite:///{out / 'dyhpo.db'}"
    # No n_trials/timeout: StopAfterEpochs ends the study and draws the epoch progress bar.
    study.optimize(
        make_objective(load_data(args.seed), args.seed),
        callbacks=[StopAfterEpochs(total)],
        show_progress_bar=True,
    )

    print(f"epochs spent: {epochs_spent(study)} (budget {total}), trials: {len(study.trials)}")
    for path in save_plots(study, out, png=not args.no_png):
        print(f"wrote {path} ({path.stat().st_size} bytes)")
    print(f"saved to the study: {', '.join(f'plot_{n}' for n in PLOTS)}")
    print(f"dashboard: optuna-dashboard {storage} --artifact-dir {out / 'artifacts'}")


if __name__ == "__main__":
    main()
