"""The tutorials: jupytext sources ``NN_name.py`` and the module that runs and renders them (``build``)."""
