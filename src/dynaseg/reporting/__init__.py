"""Ablation tables from Hydra multirun directories, laid out like the papers' tables.

- :mod:`~dynaseg.reporting.sweeps`: a sweep's jobs read back from its directories
  (:func:`~dynaseg.reporting.sweeps.load_sweep`), every expected job listed, run or not;
- :mod:`~dynaseg.reporting.paper_tables`: the tables of ``paper_tables.yaml`` and a sweep laid out
  as one (:func:`~dynaseg.reporting.paper_tables.build_paper_table`), with the statistics it
  declares (:mod:`~dynaseg.reporting.comparisons`, :mod:`~dynaseg.reporting.seed_stats`) and its
  cells (:mod:`~dynaseg.reporting.cells`);
- :mod:`~dynaseg.reporting.rendering`: markdown, CSV and (:mod:`~dynaseg.reporting.latex`) LaTeX
  of the tables and the flat job list (:func:`~dynaseg.reporting.rendering.render`), from the
  cell texts of :mod:`~dynaseg.reporting.cell_text`;
- :mod:`~dynaseg.reporting.doc_sections`: the generated sections of ``docs/ablations.md``;
- :mod:`~dynaseg.reporting.command`: :func:`~dynaseg.reporting.command.make_table`, what the
  command line ``scripts/make_table.py`` (:mod:`dynaseg.cli.make_table`) calls.

The package reads files and returns text or raises (:class:`dynaseg.errors.UserError`); it never
exits the process. The summary printed after a sweep is the Hydra callback
:class:`dynaseg.run.hydra_callbacks.MultirunSummary`, one layer up.
"""
