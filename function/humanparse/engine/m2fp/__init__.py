from humanparse.engine.m2fp.predictor import M2FPParser, build_m2fp, build_m2fp_net, preprocess

__all__ = ["M2FPParser", "build_m2fp", "build_m2fp_net", "preprocess"]
