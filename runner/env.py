"""The environment variables the tune commands read (here, light, for the parser's help)."""

ENV_URL = "TUNE_STORAGE_URL"  # a PostgreSQL URL: the storage every command and worker uses
ENV_HOME = "TUNE_HOME"  # where the embedded database, logs and spooled results live
