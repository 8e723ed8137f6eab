"""Loading a pickle that a user hands us without executing its code: numpy arrays and builtin containers only.

:func:`pickle.load` calls whatever callable a pickle names (``os.system`` included). :class:`RestrictedUnpickler`
resolves only the globals a pickled numpy array needs (``numpy.core.multiarray._reconstruct``, ``numpy.ndarray``,
``numpy.dtype``, ``numpy.core.multiarray.scalar``, under both the ``numpy.core`` and ``numpy._core`` spellings);
dicts, lists, tuples, strings, numbers, booleans and None need no global. Anything else is refused before it is
called, with an :class:`~ieegfm.errors.InputError` naming the global (the approach of the Python documentation's
"Restricting Globals" recipe).
"""

from __future__ import annotations

import io
import pickle
from pathlib import Path

import numpy as np

from ieegfm.errors import InputError

__all__ = ["ALLOWED_GLOBALS", "RestrictedUnpickler", "safe_load"]

ALLOWED_GLOBALS = {
    (module, name)
    for core in ("numpy.core.multiarray", "numpy._core.multiarray")
    for module, name in ((core, "_reconstruct"), (core, "scalar"))
} | {("numpy", "ndarray"), ("numpy", "dtype")}


class RestrictedUnpickler(pickle.Unpickler):
    """An unpickler that resolves only :data:`ALLOWED_GLOBALS` (see the module docstring)."""

    def find_class(self, module: str, name: str):
        if (module, name) not in ALLOWED_GLOBALS:
            raise pickle.UnpicklingError(f"global {module}.{name}")
        if module == "numpy":
            return getattr(np, name)
        core = np._core if hasattr(np, "_core") else np.core  # numpy 2 renamed numpy.core
        return getattr(core.multiarray, name)


def safe_load(path: str | Path, what: str = "file") -> object:
    """Unpickle ``path`` allowing numpy arrays and builtin containers only.

    Parameters
    ----------
    path : str | Path
    what : str
        Named in errors (e.g. ``file``).

    Returns
    -------
    object

    Raises
    ------
    InputError
        Missing file; a pickle naming any other global ("refused: ... global os.system"); not a pickle.
    """
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{what}={path}: not found")
    try:
        return RestrictedUnpickler(io.BytesIO(path.read_bytes())).load()
    except pickle.UnpicklingError as err:
        if str(err).startswith("global "):
            raise InputError(
                f"{what}={path}: refused: it names the {err}, and only numpy arrays and builtin containers are "
                "loaded (nothing in it was executed)"
            ) from None
        raise InputError(f"{what}={path}: not a readable pickle ({err})") from None
    except (EOFError, ValueError, TypeError, AttributeError, IndexError, KeyError) as err:
        raise InputError(f"{what}={path}: not a readable pickle ({type(err).__name__}: {err})") from None
