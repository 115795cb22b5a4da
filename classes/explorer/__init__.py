"""The V4 explorer: a static website with a page per compact model (``script9_explorer.py``).

Computation (cached, resumable): :mod:`~classes.explorer.responses`,
:mod:`~classes.explorer.synthesized`, :mod:`~classes.explorer.dot_tuning`,
:mod:`~classes.explorer.summaries`; the site: :mod:`~classes.explorer.site`
with its pages (:mod:`~classes.explorer.index_page`,
:mod:`~classes.explorer.neuron_page`, :mod:`~classes.explorer.paper_figures`),
charts, the weight export for the in-browser model and the files of
``assets/`` (style sheet; the JavaScript forward pass, gradient and synthesis).
"""
