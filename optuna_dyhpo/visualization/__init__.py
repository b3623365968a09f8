"""Plots of a DyHPO study: the race, the learning curves and the anytime incumbent.

Each function takes a study (normally optimised with :class:`~optuna_dyhpo.DyHPOSampler` and
:class:`~optuna_dyhpo.DyHPOPruner`) and returns a :class:`plotly.graph_objects.Figure` in the
style of :mod:`optuna.visualization`. They read the study through its storage only, so a study
loaded from a database works while it is still being optimised.

* :func:`plot_race`: which configuration received each epoch, in the order they were spent,
  with the paused/resumed boundaries.
* :func:`plot_learning_curves`: one line per configuration across its paused and resumed trials,
  coloured by its best value.
* :func:`plot_incumbent`: the best value so far against epochs spent (a resumed trial's copied
  epochs are not counted again).

Crowded studies (hundreds of configurations): every plot highlights the ``top_k`` (default 10)
configurations with the best value and draws the others faint grey without legend entries (still
hoverable); ``top_k=None`` highlights them all. The y range leaves out the worst
``clip_quantile`` (default 2%) of the values, never the best one, and says how many it left out.
The race labels every highlighted configuration's row and puts the others in a compact,
unlabelled panel below; its figure height grows with the number of configurations (up to a cap
for the faded ones), so save it without a ``height`` to keep that:
``fig.write_image("race.png", width=1000)``.

plotly is imported when a function is called (``pip install plotly``), never at import time.

Saving a figure:

* HTML: ``fig.write_html("race.html")`` (plotly alone).
* PNG/SVG/PDF: ``fig.write_image("race.png")`` needs ``pip install kaleido`` (>= 1.0) and a
  Chrome or Chromium that kaleido can find (on Debian/Ubuntu: ``apt-get install chromium``; or
  set ``BROWSER_PATH``). kaleido does not ship a browser.
* optuna-dashboard: ``optuna_dashboard.save_plotly_graph_object(study, fig)`` stores the figure in
  the study; the dashboard shows it on the study's "Analytics"/plot page.

Example:

    .. code::

        import optuna
        from optuna_dyhpo.visualization import plot_incumbent
        from optuna_dyhpo.visualization import plot_learning_curves
        from optuna_dyhpo.visualization import plot_race

        study = optuna.load_study(study_name="dyhpo", storage="sqlite:///dyhpo.db")
        plot_race(study).write_html("race.html")
        plot_learning_curves(study, top_k=5, clip_quantile=0.05).write_html("curves.html")
        plot_incumbent(study).write_html("incumbent.html")
"""

from __future__ import annotations

from optuna_dyhpo.visualization._curves import plot_learning_curves
from optuna_dyhpo.visualization._incumbent import plot_incumbent
from optuna_dyhpo.visualization._race import plot_race

__all__ = ["plot_incumbent", "plot_learning_curves", "plot_race"]
