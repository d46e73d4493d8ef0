"""Jobs and storage: job keys, the job status (one model), the job store over S3, the content-addressed result
cache, and the job runner every entry hands its jobs to."""
