"""Space-filling-curve serialization (z-order and Hilbert) with Pointcept's code layout."""
from .encode import ORDERS, encode
from .hilbert import hilbert_encode
from .z_order import z_order_encode

__all__ = ["ORDERS", "encode", "hilbert_encode", "z_order_encode"]
