"""The parse pipeline: bytes → decoded image → label maps → rendered files (colour maps, try-on
inputs, label sets, keypoints, outfit). No S3, HTTP or job state here."""
