"""Errors and the import report: every bad row is either a clear error or a counted, listed skip."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any


class DataError(ValueError):
    """Bad input, located precisely: which file, which line (or row) and which field."""

    def __init__(self, file: str, line: int | None, field_name: str | None, message: str):
        self.file = str(file)
        self.line = line
        self.field = field_name
        self.message = message
        super().__init__(str(self))

    def __str__(self) -> str:
        where = self.file
        if self.line is not None:
            where += f":{self.line}"
        if self.field:
            where += f": field '{self.field}'"
        return f"{where}: {self.message}"

    def as_dict(self) -> dict[str, Any]:
        return {"file": self.file, "line": self.line, "field": self.field, "reason": self.message}

    def __reduce__(self):
        # Pickled as its fields (a Dask worker sends a shard's error back as a value): Exception's own
        # pickling would call __init__ with the one-string message alone. Subclasses keep their type.
        return (_rebuilt, (type(self), self.__dict__))


def _rebuilt(cls: type[DataError], fields: dict[str, Any]) -> DataError:
    error = cls.__new__(cls)
    error.__dict__.update(fields)
    Exception.__init__(error, DataError.__str__(error))
    return error


class UnknownIdError(DataError, KeyError):
    """An id (user, item) that the dataset or shop does not have. Also a KeyError, as lookups raise."""

    def __init__(self, kind: str, value: str, where: str = "", known: list[str] | None = None):
        hint = f"; known {kind}s include {', '.join(repr(k) for k in known[:5])}" if known else ""
        super().__init__(where, None, None, f"unknown {kind} {value!r}{hint}")

    def __str__(self) -> str:
        return super().__str__() if self.file else self.message


class InvalidValue(ValueError):
    """One value that cannot be taken as it is; the message is the reason. The caller adds file, line and field."""


@dataclass
class ImportReport:
    """What an import kept and what it skipped, and why. Written as import_report.json.

    With ``strict=True`` the first problem raises instead of being skipped.
    """

    strict: bool = False
    skipped: list[dict[str, Any]] = field(default_factory=list)
    counts: Counter = field(default_factory=Counter)
    max_listed: int = 10_000

    def skip(self, file: str, line: int | None, field_name: str | None, reason: str) -> None:
        err = DataError(file, line, field_name, reason)
        if self.strict:
            raise err
        self.counts[reason.split(":")[0]] += 1
        if len(self.skipped) < self.max_listed:
            self.skipped.append(err.as_dict())

    def merge(self, other: ImportReport) -> None:
        """Add what ``other`` skipped (a shard's report, read elsewhere) after what this one skipped."""
        self.counts.update(other.counts)
        self.skipped.extend(other.skipped[: max(self.max_listed - len(self.skipped), 0)])

    def withdraw(self, file: str, line: int | None, field_name: str) -> None:
        """Take back the listed skips of ``field_name`` at ``file``:``line`` (a row dropped whole after all)."""
        gone = [s for s in self.skipped if (s["file"], s["line"], s["field"]) == (file, line, field_name)]
        for s in gone:
            self.skipped.remove(s)
            self.counts[s["reason"].split(":")[0]] -= 1
        self.counts += Counter()  # drops reasons whose count fell to 0

    @property
    def n_skipped(self) -> int:
        return sum(self.counts.values())

    def as_dict(self) -> dict[str, Any]:
        return {
            "n_skipped": self.n_skipped,
            "skipped_by_reason": dict(self.counts),
            "skipped": self.skipped,
            "listed_all": self.n_skipped <= len(self.skipped),
        }

    def summary(self) -> str:
        if not self.n_skipped:
            return "no rows skipped"
        parts = ", ".join(f"{n} x {r}" for r, n in self.counts.most_common())
        return f"{self.n_skipped} rows skipped ({parts}); see import_report.json"
