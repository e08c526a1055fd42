"""Parquet shards: one image per row of the image column, Hugging Face ``datasets`` style (a
struct of ``bytes`` and ``path``) or plain binary. Rows are items ``shard.parquet[row]``.

The column is the only one holding image bytes, or the one the ``huggingface`` schema metadata
declares an ``Image`` among several; otherwise ``column`` must name it. Without pyarrow every
parquet file is an InputError naming the install: skipping them would give statistics of part
of what was asked for (or none), which is worse than stopping.

Memory: rows are read a few at a time from a buffered stream of the column (never the file);
a row group is the unit pyarrow decodes, so one cell is held whole once read.
"""

from __future__ import annotations

import bisect
import errno
import io
import json
from collections import OrderedDict
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, BinaryIO

from normstat.errors import InputError

from .base import Item, Source

__all__ = ["index", "members", "open_row", "stream"]

_BATCH = 16  # rows decoded at a time while streaming
_BUFFER = 1 << 20  # bytes pyarrow reads at a time: columns streamed, not loaded whole
_HINT = "pip install 'normstat[parquet]'"


def _pq(container: Item) -> Any:
    try:
        import pyarrow.parquet as pq
    except ImportError:
        raise InputError(container.path, f"parquet shards need pyarrow; {_HINT}") from None
    return pq


def _broken() -> tuple[type[BaseException], ...]:
    import pyarrow as pa

    return (pa.ArrowException, OSError, ValueError, EOFError, KeyError)


def _kind(t: Any) -> str | None:
    """ "binary" or "struct" (with a ``bytes`` binary field) for a column of image bytes."""
    import pyarrow as pa

    def binary(u: Any) -> bool:
        view = getattr(pa.types, "is_binary_view", lambda _: False)
        return bool(pa.types.is_binary(u) or pa.types.is_large_binary(u) or view(u))

    if binary(t):
        return "binary"
    if pa.types.is_struct(t):
        i = t.get_field_index("bytes")
        if i >= 0 and binary(t.field(i).type):
            return "struct"
    return None


def _declared_images(metadata: dict[bytes, bytes] | None) -> set[str]:
    """Columns the ``datasets`` metadata declares as ``Image`` features."""
    try:
        features = json.loads((metadata or {})[b"huggingface"])["info"]["features"]
        return {k for k, v in features.items() if v.get("_type") == "Image"}
    except (KeyError, TypeError, ValueError, AttributeError):
        return set()


def choose_column(schema: Any, column: str | None, container: Item) -> tuple[str, str]:
    """(column, path to read): the image column of ``schema``; InputError when none is, when
    several could be, or when ``column`` is absent or holds no bytes."""
    if column is not None:
        if column not in schema.names:
            listed = ", ".join(schema.names)
            raise InputError(container.path, f"no column {column!r} (columns: {listed})")
        kind = _kind(schema.field(column).type)
        if kind is None:
            raise InputError(
                container.path,
                f"column {column!r} holds {schema.field(column).type}, not image bytes"
                " (binary, or a struct with a 'bytes' field)",
            )
        return column, _path(column, kind)
    found = [(f.name, k) for f in schema if (k := _kind(f.type)) is not None]
    declared = [c for c in found if c[0] in _declared_images(schema.metadata)]
    if len(declared) == 1 or len(found) == 1:
        name, kind = (declared or found)[0]
        return name, _path(name, kind)
    if not found:
        why = "no image column (binary, or a struct with a 'bytes' field); give --column NAME"
    else:
        names = ", ".join(name for name, _ in found)
        why = f"several columns could hold the images ({names}); give --column NAME"
    raise InputError(container.path, why)


def _path(name: str, kind: str) -> str:
    # Only the bytes of a struct are read; a dotted name would be read as a nested path.
    return f"{name}.bytes" if kind == "struct" and "." not in name else name


def _values(arr: Any) -> list[bytes | None]:
    out = []
    for v in arr.to_pylist():
        out.append(v.get("bytes") if isinstance(v, dict) else v)
    return out


def _row(container: Item, row: int, value: bytes | None) -> tuple[Item, BinaryIO | OSError]:
    item = Item(container.root, f"{container.rel}[{row}]")
    if value is None:
        return item, OSError(errno.ENODATA, "no image in this row (null)")
    return item, io.BytesIO(value)


def _reader(pq: Any, f: BinaryIO) -> Any:
    return pq.ParquetFile(f, buffer_size=_BUFFER, pre_buffer=False)


def stream(
    inner: Source, container: Item, column: str | None
) -> Iterator[tuple[Item, BinaryIO | OSError]]:
    """The rows in order, a batch at a time; a damage ends the stream with one error for the
    container after the rows read."""
    pq = _pq(container)
    broken = _broken()
    try:
        f = inner.open(container)
    except OSError as exc:
        yield container, exc
        return
    with f:
        try:
            pf = _reader(pq, f)
        except broken as exc:
            yield container, _not_parquet(exc)
            return
        _, path = choose_column(pf.schema_arrow, column, container)
        row = 0
        try:
            for batch in pf.iter_batches(batch_size=_BATCH, columns=[path], use_threads=False):
                for value in _values(batch.column(0)):
                    yield _row(container, row, value)
                    row += 1
        except broken as exc:
            yield container, OSError(errno.EIO, f"parquet file damaged after {row} rows: {exc}")


def _not_parquet(exc: BaseException) -> OSError:
    text = str(exc).strip().splitlines()
    return OSError(errno.EINVAL, f"not a readable parquet file ({text[0] if text else exc})")


@dataclass(frozen=True)
class Index:
    """Where each row group starts, the column read, or why the file cannot be read."""

    starts: tuple[int, ...]
    rows: int
    path: str
    error: str | None


_INDEXES: OrderedDict[tuple[str, str, str, str | None], Index] = OrderedDict()
_GROUP: dict[tuple[str, str, str, str | None, int], list[bytes | None]] = {}  # the last one read


def index(inner: Source, container: Item, column: str | None, version: str | None = None) -> Index:
    """The file's row groups and image column from its footer, cached per process; InputError
    for a column problem, an Index with ``error`` for a file that cannot be read."""
    pq = _pq(container)
    version = version or inner.version(container)
    key = (container.root, container.rel, str(version), column)
    found = _INDEXES.get(key)
    if found is not None and version is not None:
        return found
    try:
        with inner.open(container) as f:
            meta = _reader(pq, f)
            _, path = choose_column(meta.schema_arrow, column, container)
            sizes = [meta.metadata.row_group(g).num_rows for g in range(meta.num_row_groups)]
    except OSError as exc:
        return Index((), 0, "", exc.strerror or str(exc))
    except _broken() as exc:
        return Index((), 0, "", _not_parquet(exc).strerror)
    starts = [0]
    for n in sizes:
        starts.append(starts[-1] + n)
    built = Index(tuple(starts[:-1]), starts[-1], path, None)
    if version is not None:
        _INDEXES[key] = built
        while len(_INDEXES) > 4:
            _INDEXES.popitem(last=False)
    return built


def members(inner: Source, container: Item, column: str | None) -> list[Item]:
    """One item per row; the container itself when the file cannot be read."""
    idx = index(inner, container, column)
    if idx.error:
        return [container]
    return [Item(container.root, f"{container.rel}[{row}]") for row in range(idx.rows)]


def open_row(
    inner: Source, container: Item, row: int, column: str | None, version: str | None = None
) -> BinaryIO:
    """One row's image, through the row group holding it (the last group read is kept)."""
    version = version or inner.version(container)
    idx = index(inner, container, column, version)
    if idx.error:
        raise OSError(errno.EINVAL, idx.error)
    if not 0 <= row < idx.rows:
        raise FileNotFoundError(errno.ENOENT, f"no row {row} (the file has {idx.rows})")
    group = bisect.bisect_right(idx.starts, row) - 1
    key = (container.root, container.rel, str(version), column, group)
    values = _GROUP.get(key)
    if values is None:
        try:
            with inner.open(container) as f:
                table = _reader(_pq(container), f).read_row_group(group, columns=[idx.path])
        except _broken() as exc:
            raise OSError(errno.EIO, f"parquet row group {group} cannot be read: {exc}") from None
        values = _values(table.column(0))
        _GROUP.clear()
        _GROUP[key] = values
    got = _row(container, row, values[row - idx.starts[group]])[1]
    if isinstance(got, OSError):
        raise got
    return got


def container_error(inner: Source, container: Item, column: str | None) -> str | None:
    return index(inner, container, column).error
