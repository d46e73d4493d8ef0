"""Jobs and storage: job keys, the job store over S3, the content-addressed result cache."""
