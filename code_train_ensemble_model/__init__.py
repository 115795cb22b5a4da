"""Training the ensemble model's members (SPEC section 4).

Run ``python -m code_train_ensemble_model.train --help``; see readme.md.
"""
