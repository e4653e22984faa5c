from .config import Config, ConfigDict, parse_option_value, parse_options
from .registry import Registry, build_from_cfg
