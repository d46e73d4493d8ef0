"""humanparse: multi-person human parsing (M2FP and a lite ONNX tier) as a serverless function.

Boundaries (one module each):
- ``engine``: image in, label map / persons / colour maps out. Knows nothing of S3 or HTTP.
- ``app`` (FastAPI via Mangum) and ``s3_handler`` (S3 event trigger): thin adapters.
"""

__version__ = "0.1.0"
