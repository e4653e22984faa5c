"""Space-filling-curve serialization (z-order and Hilbert) with Pointcept's code layout."""
from .encode import ORDERS, encode, encode_orders
from .hilbert import hilbert_encode
from .z_order import z_order_encode

__all__ = ["ORDERS", "encode", "encode_orders", "hilbert_encode", "z_order_encode"]
