"""A procedural street-scene LiDAR simulator writing nuScenes, SemanticKITTI and Waymo layouts."""
from .classes import SimClass
from .generate import GenerateReport, generate, simulate_frame
from .profiles import PROFILES, SensorProfile, get_profile

__all__ = ["generate", "simulate_frame", "GenerateReport", "PROFILES", "SensorProfile", "get_profile",
           "SimClass"]
