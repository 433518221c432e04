"""Reading a PyTorch zip checkpoint (`torch.save`) without PyTorch, and without trusting it.

A checkpoint is a zip holding `<root>/data.pkl` (a pickle of the state dict) and one file per tensor
storage (`<root>/data/<key>`). Unpickling runs whatever callables the pickle names, so the unpickler here
resolves exactly three names — the tensor-rebuild record, the storage types and `OrderedDict` — and
refuses every other one with `UnsafeCheckpoint`: a checkpoint cannot make it import or call anything else.
Tensors come back as numpy arrays.

Some checkpoints also pickle their training library's records beside the tensors (pyannote's
segmentation-3.0: `Specifications`, `Problem`, `Resolution`, `TorchVersion`). A caller may name such
classes (`stand_ins`): each named one is read as an inert `StandIn` that only keeps the arguments and state
the pickle gives it; nothing is imported and nothing of the named class runs. Every other name is still
refused.
"""

from __future__ import annotations

import io
import pickle
import zipfile
from collections import OrderedDict
from collections.abc import Callable, Collection
from pathlib import Path
from typing import Any

import numpy as np

# The storage classes `torch.save` writes, by their numpy dtype.
STORAGE_DTYPES: dict[str, np.dtype[Any]] = {
    "FloatStorage": np.dtype("<f4"),
    "DoubleStorage": np.dtype("<f8"),
    "HalfStorage": np.dtype("<f2"),
    "LongStorage": np.dtype("<i8"),
    "IntStorage": np.dtype("<i4"),
    "ShortStorage": np.dtype("<i2"),
    "CharStorage": np.dtype("i1"),
    "ByteStorage": np.dtype("u1"),
    "BoolStorage": np.dtype("?"),
}
MAX_PICKLE_BYTES = 16 * 1024 * 1024  # a state dict's pickle is small: its tensors live beside it


class UnsafeCheckpoint(ValueError):
    """The checkpoint names something other than tensors and ordered dicts, or is not a checkpoint."""


class StandIn:
    """An object a checkpoint named by a class the caller allowed (`stand_ins`): it keeps what the pickle
    gives it (constructor arguments, state) as data, and does nothing else."""

    qualname: str = ""

    def __new__(cls, *args: Any, **kwargs: Any) -> StandIn:
        made = super().__new__(cls)
        made.args = args
        made.state = None
        return made

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        # pickle's REDUCE calls the class, NEWOBJ only its __new__: both leave the arguments recorded
        self.args: tuple[Any, ...] = args
        self.state: Any = None

    def __setstate__(self, state: Any) -> None:
        self.state = state

    def __repr__(self) -> str:
        return f"StandIn({self.qualname}, args={self.args!r:.60})"


def _stand_in(qualname: str) -> type[StandIn]:
    return type("StandIn", (StandIn,), {"qualname": qualname, "__slots__": ()})


class _StorageType:
    """Stands for `torch.FloatStorage` etc. in a persistent id: only its dtype is used."""

    def __init__(self, name: str) -> None:
        self.dtype = STORAGE_DTYPES[name]


def _rebuild_tensor_v2(
    storage: np.ndarray,
    offset: int,
    size: tuple[int, ...],
    stride: tuple[int, ...],
    requires_grad: bool = False,
    backward_hooks: object = None,
    metadata: object = None,
) -> np.ndarray:
    """`torch._utils._rebuild_tensor_v2`: a view of `storage`, copied so that it owns its memory."""
    if not isinstance(storage, np.ndarray):
        raise UnsafeCheckpoint("a tensor record without a storage")
    itemsize = storage.dtype.itemsize
    if size and min(size) > 0:
        last = offset + sum((n - 1) * s for n, s in zip(size, stride, strict=True))
        if offset < 0 or last >= storage.size or min(stride) < 0:
            raise UnsafeCheckpoint("a tensor reaches outside its storage")
    view = np.lib.stride_tricks.as_strided(
        storage[offset:] if storage.size else storage,
        shape=tuple(size),
        strides=tuple(s * itemsize for s in stride),
        writeable=False,
    )
    return np.array(view, copy=True)


class _RestrictedUnpickler(pickle.Unpickler):
    def __init__(
        self,
        data: bytes,
        storage: Callable[[str, np.dtype[Any], int], np.ndarray],
        stand_ins: Collection[str] = (),
    ) -> None:
        super().__init__(io.BytesIO(data))
        self._storage = storage
        self._stand_ins = frozenset(stand_ins)

    def find_class(self, module: str, name: str) -> Any:
        if module == "torch._utils" and name == "_rebuild_tensor_v2":
            return _rebuild_tensor_v2
        if module == "torch" and name in STORAGE_DTYPES:
            return _StorageType(name)
        if module == "collections" and name == "OrderedDict":
            return OrderedDict
        if f"{module}.{name}" in self._stand_ins:
            return _stand_in(f"{module}.{name}")
        raise UnsafeCheckpoint(f"the checkpoint names {module}.{name}, which is not a tensor record")

    def persistent_load(self, pid: Any) -> Any:
        # ('storage', storage type, key, location, number of elements)
        if not (isinstance(pid, tuple) and len(pid) == 5 and pid[0] == "storage"):
            raise UnsafeCheckpoint(f"an unknown persistent record {pid!r:.80}")
        _, kind, key, _location, numel = pid
        if not isinstance(kind, _StorageType) or not isinstance(key, str) or not isinstance(numel, int):
            raise UnsafeCheckpoint("a malformed storage record")
        return self._storage(key, kind.dtype, numel)


def load_state_dict(path: Path, stand_ins: Collection[str] = ()) -> dict[str, np.ndarray]:
    """The tensors of a `torch.save`d state dict, by name, as numpy arrays. Raises `UnsafeCheckpoint`
    for a checkpoint that names anything but tensors (or that is not a checkpoint), apart from the
    classes named in `stand_ins` (`"module.Class"`), which are read as inert `StandIn` records."""
    try:
        archive = zipfile.ZipFile(path)
    except zipfile.BadZipFile as exc:
        raise UnsafeCheckpoint(f"{path.name} is not a PyTorch zip checkpoint") from exc
    with archive:
        pickles = [n for n in archive.namelist() if n.endswith("/data.pkl") and n.count("/") == 1]
        if len(pickles) != 1:
            raise UnsafeCheckpoint(f"{path.name} is not a PyTorch zip checkpoint")
        root = pickles[0].split("/")[0]
        if archive.getinfo(pickles[0]).file_size > MAX_PICKLE_BYTES:
            raise UnsafeCheckpoint(f"{path.name}'s pickle is too large for a state dict")
        loaded: dict[str, np.ndarray] = {}

        def storage(key: str, dtype: np.dtype[Any], numel: int) -> np.ndarray:
            if key not in loaded:
                info = archive.getinfo(f"{root}/data/{key}")
                if info.file_size != numel * dtype.itemsize:
                    raise UnsafeCheckpoint(f"storage {key} holds {info.file_size} bytes, not {numel} items")
                loaded[key] = np.frombuffer(archive.read(info), dtype=dtype)
            return loaded[key]

        state = _RestrictedUnpickler(archive.read(pickles[0]), storage, stand_ins).load()
    if isinstance(state, dict) and "state_dict" in state and isinstance(state["state_dict"], dict):
        state = state["state_dict"]
    if not isinstance(state, dict) or not all(
        isinstance(k, str) and isinstance(v, np.ndarray) for k, v in state.items()
    ):
        raise UnsafeCheckpoint(f"{path.name} holds no state dict of tensors")
    return dict(state)
