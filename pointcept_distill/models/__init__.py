from .builder import LOSSES, MODELS, MODULES, build_model
