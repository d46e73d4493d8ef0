"""Offline emulation of the deployment on one machine: embedded S3 (moto's real HTTP server), S3 → SQS
notifications, workers that invoke the same Lambda handler, and the page. Not part of the Lambda image's
hot path."""
