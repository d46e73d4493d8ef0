"""The ways in: the HTTP API, the S3 trigger, the Lambda wiring (service), the Python API (library)
and the command line. Each is a thin adapter over the pipeline and the job store."""
