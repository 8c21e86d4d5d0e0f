"""Studies, storage, workers and the ``tune`` CLI. Knows Optuna and PostgreSQL; knows nothing of Textual."""
