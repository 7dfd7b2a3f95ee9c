"""``Sealed``: a Dask task's big argument, passed through Prefect and Dask untouched.

A chunk of the Dask engine (``flows.engine``) carries its units and windows (as Arrow tables,
``neuroscribe.warehouse.columnar``), and for the ``score`` command its explanations. Passed as
records, they were hundreds of thousands of objects (each window's tokens, each unit's
activations), which cost the flow's process far more than the workers' own work, in four places,
each paid one chunk after another in the one process that sends every chunk:

- Prefect walks every list, tuple, dict, dataclass and pydantic model of a task's arguments,
  element by element, looking for futures and states: twice in the flow's process when a task is
  submitted (and once more on the worker). An instance of a plain class is a leaf to that walk.
- Dask names a task by a hash of its arguments; for an object it does not know, that means
  pickling it just to hash it. A sealed value is named by a random token instead (each
  submission is new work: a retry is Prefect's, not Dask's).
- Dask pickles a Prefect task with ``cloudpickle``, whose pure-Python hook runs once per object
  (many times slower than ``pickle`` on records). A sealed value travels as the bytes of one
  plain ``pickle``, made once.
- The Dask scheduler (in the flow's process, for a local cluster) unpickles every task it is
  given and pickles it again for the worker. A sealed value unpickles to those bytes alone; the
  value itself is unpickled only where it is used, on the worker (``Sealed.value``).
"""

from __future__ import annotations

import pickle
import uuid
from typing import Any, Generic, TypeVar

T = TypeVar("T")


class Sealed(Generic[T]):
    """``value``, pickled once (plain ``pickle``) and unpickled only when first read."""

    __slots__ = ("_data", "_loaded", "_value", "token")

    def __init__(self, value: T) -> None:
        self._value: T | None = value
        self._loaded = True
        self._data: bytes | None = None
        self.token = uuid.uuid4().hex

    @classmethod
    def _from_bytes(cls, data: bytes, token: str) -> Sealed[Any]:
        sealed: Sealed[Any] = cls.__new__(cls)
        sealed._value, sealed._loaded, sealed._data, sealed.token = None, False, data, token
        return sealed

    @property
    def value(self) -> T:
        if not self._loaded:
            assert self._data is not None
            self._value, self._loaded = pickle.loads(self._data), True
        return self._value  # type: ignore[return-value]

    @property
    def loaded(self) -> bool:
        """Whether ``value`` is held as an object (sealed here, or read since it arrived)."""
        return self._loaded

    def __reduce__(self) -> tuple[Any, tuple[bytes, str]]:
        if self._data is None:
            self._data = pickle.dumps(self._value, protocol=pickle.HIGHEST_PROTOCOL)
        return Sealed._from_bytes, (self._data, self.token)

    def __dask_tokenize__(self) -> str:
        return self.token
