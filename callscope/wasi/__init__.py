"""Host implementations of WASI for callscope guests (see core.py)."""

from .core import Interface, Wasi, WasiExit, interface_key
from .resources import HostResource, TypeMap

__all__ = ["Wasi", "WasiExit", "Interface", "HostResource", "TypeMap", "interface_key"]
