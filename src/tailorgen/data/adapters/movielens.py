"""MovieLens (GroupLens): the classic ml-100k folder and the CSV releases (ml-latest-small, ml-25m, ...).

Timestamps are seconds, and every date must be plausible; ratings must be finite and on
MovieLens' 0.5-5 scale (``tailorgen.data.values``).

Movies have no description or image in MovieLens itself; genres become tags (the first one
the category), and a local folder of posters named by movie id (``1.jpg``) can be copied in
with ``images=``.
"""

from __future__ import annotations

import csv
from collections import Counter
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from tailorgen.data.adapters._common import (
    PathLike,
    attach_images,
    clean_interactions_table,
    extra_json,
    images_by_item_id,
    report_users_without_interactions,
    source_paths,
    source_record,
    text_or_none,
    unique,
)
from tailorgen.data.adapters._readers import Row, read_delimited
from tailorgen.data.clean import clean_items
from tailorgen.data.errors import ImportReport
from tailorgen.data.store import DatasetWriter
from tailorgen.data.values import RATING_SCALES

# The 19 genre flags of u.item, in order (as listed in ml-100k's u.genre, which wins if present).
GENRES_100K = (
    "unknown",
    "Action",
    "Adventure",
    "Animation",
    "Children's",
    "Comedy",
    "Crime",
    "Documentary",
    "Drama",
    "Fantasy",
    "Film-Noir",
    "Horror",
    "Musical",
    "Mystery",
    "Romance",
    "Sci-Fi",
    "Thriller",
    "War",
    "Western",
)
_ITEM_COLUMNS_100K = ("movie_id", "title", "release_date", "video_release_date", "imdb_url")
# ratings.csv column for each interaction field.
_RATING_COLUMNS_CSV = {"user_id": "userId", "item_id": "movieId", "rating": "rating", "timestamp": "timestamp"}
# MovieLens CSVs mark a movie without genres with this placeholder rather than an empty field.
_NO_GENRES = "(no genres listed)"


def _one_dir(fmt: str, src: PathLike | Sequence[PathLike], needs: Sequence[str]) -> Path:
    (root,) = source_paths(fmt, src, ("DIR",))
    if not root.is_dir():
        raise ValueError(f"format '{fmt}' takes the dataset's folder, not a file: {root}")
    missing = [n for n in needs if not (root / n).is_file()]
    if missing:
        raise FileNotFoundError(f"{root} has no {', '.join(missing)}; is it the unpacked {fmt} folder?")
    return root


def _genres_100k(path: Path) -> tuple[str, ...]:
    """Genre names from u.genre (``name|index`` lines), falling back to the published list."""
    if not path.is_file():
        return GENRES_100K
    names: dict[int, str] = {}
    for line in path.read_text(encoding="latin-1").splitlines():
        name, _, index = line.strip().rpartition("|")
        if name and index.isdigit():
            names[int(index)] = name
    ordered = tuple(names[i] for i in sorted(names))
    return ordered if sorted(names) == list(range(len(names))) and ordered else GENRES_100K


def _items_100k(path: Path, genres: tuple[str, ...], report: ImportReport) -> Iterator[Row]:
    flag_columns = [f"genre:{g}" for g in genres]
    # u.item is Latin-1 and never quotes fields, though some titles contain quote marks.
    rows = read_delimited(
        path,
        report,
        delimiter="|",
        encoding="latin-1",
        fieldnames=(*_ITEM_COLUMNS_100K, *flag_columns),
        quoting=csv.QUOTE_NONE,
    )
    for rec, where in rows:
        flagged = [g for g, c in zip(genres, flag_columns) if rec[c].strip() == "1"]
        extra = {k: text_or_none(rec[k]) for k in ("release_date", "video_release_date", "imdb_url")}
        yield (
            {
                "item_id": text_or_none(rec["movie_id"]),
                "title": text_or_none(rec["title"]),
                "category": flagged[0] if flagged else None,
                "tags": flagged or None,
                "extra": extra_json(extra),
            },
            where,
        )


def import_movielens_100k(
    src: PathLike | Sequence[PathLike],
    out: PathLike,
    *,
    overwrite: bool = False,
    strict: bool = False,
    images: PathLike | None = None,
) -> Path:
    """ml-100k: ``src`` is the folder with u.data, u.item and (optionally) u.user and u.genre.

    Users listed in u.user without any rating are reported, since the schema keeps users
    only through their interactions. Their demographics are not kept (no users table).
    """
    fmt = "movielens-100k"
    root = _one_dir(fmt, src, ("u.data", "u.item"))
    report = ImportReport(strict=strict)
    u_user = root / "u.user"
    source = source_record(fmt, {"dir": root, "images": images}, {"strict": strict})
    sources = [p for p in (root, images) if p is not None]
    with DatasetWriter(Path(out), source=source, overwrite=overwrite, report=report, sources=sources) as writer:
        items = clean_items(_items_100k(root / "u.item", _genres_100k(root / "u.genre"), report), report)
        attach_images(writer, items, images_by_item_id(items, images), report)
        ratings = read_delimited(
            root / "u.data",
            report,
            delimiter="\t",
            fieldnames=("user_id", "item_id", "rating", "timestamp"),
            quoting=csv.QUOTE_NONE,
        )
        interactions = clean_interactions_table(
            ratings, {it["item_id"] for it in items}, report, rating_scale=RATING_SCALES["movielens"]
        )
        if u_user.is_file():
            users = read_delimited(
                u_user,
                report,
                delimiter="|",
                encoding="latin-1",
                fieldnames=("user_id", "age", "gender", "occupation", "zip_code"),
                quoting=csv.QUOTE_NONE,
            )
            report_users_without_interactions(((u["user_id"], w) for u, w in users), interactions, report)
        writer.set_tables(items=items, interactions=interactions)
    return Path(out)


def _items_csv(path: Path, report: ImportReport) -> Iterator[Row]:
    for rec, where in read_delimited(path, report):
        genres = [] if rec.get("genres", "").strip() == _NO_GENRES else unique((rec.get("genres") or "").split("|"))
        yield (
            {
                "item_id": text_or_none(rec.get("movieId")),
                "title": text_or_none(rec.get("title")),
                "category": genres[0] if genres else None,
                "tags": genres,
                # Kept as a dict until links and user tags are merged in; serialised below.
                "extra": {k: v for k, v in rec.items() if k not in ("movieId", "title", "genres") and v},
            },
            where,
        )


def _merge_links(path: Path, items: dict[str, dict], report: ImportReport) -> None:
    """links.csv (movieId, imdbId, tmdbId) goes to extra; ids stay strings (imdbId has leading zeros)."""
    for rec, (file, line) in read_delimited(path, report):
        movie = items.get((rec.get("movieId") or "").strip())
        if movie is None:
            report.skip(file, line, "movieId", f"unknown item: '{rec.get('movieId')}' is not in movies.csv")
            continue
        movie["extra"].update({k: v for k, v in rec.items() if k != "movieId" and v})


def _merge_tags(path: Path, items: dict[str, dict], report: ImportReport) -> None:
    """tags.csv: free-text user tags join the item's tags; how often each was given goes to extra.

    Tags are merged case-insensitively (users write "Pixar" and "pixar"), keeping the first
    spelling seen, after the genres.
    """
    counts: dict[str, Counter] = {}
    for rec, (file, line) in read_delimited(path, report):
        tag = (rec.get("tag") or "").strip()
        movie_id = (rec.get("movieId") or "").strip()
        if not tag:
            report.skip(file, line, "tag", "missing required field")
            continue
        if movie_id not in items:
            report.skip(file, line, "movieId", f"unknown item: '{movie_id}' is not in movies.csv")
            continue
        counts.setdefault(movie_id, Counter())[tag] += 1
    for movie_id, tag_counts in counts.items():
        movie = items[movie_id]
        tags = list(movie["tags"] or [])
        seen = {t.casefold() for t in tags}
        for tag in tag_counts:  # first-seen order
            if tag.casefold() not in seen:
                seen.add(tag.casefold())
                tags.append(tag)
        movie["tags"] = tags
        movie["extra"]["user_tag_counts"] = dict(tag_counts)


def import_movielens_csv(
    src: PathLike | Sequence[PathLike],
    out: PathLike,
    *,
    overwrite: bool = False,
    strict: bool = False,
    images: PathLike | None = None,
) -> Path:
    """ml-latest-small, ml-25m and other CSV releases: ``src`` is the folder with ratings.csv and movies.csv.

    Optional tags.csv adds user tags to the items' tags; optional links.csv (IMDb/TMDB ids) goes to extra.
    """
    fmt = "movielens-csv"
    root = _one_dir(fmt, src, ("ratings.csv", "movies.csv"))
    report = ImportReport(strict=strict)
    source = source_record(fmt, {"dir": root, "images": images}, {"strict": strict})
    sources = [p for p in (root, images) if p is not None]
    with DatasetWriter(Path(out), source=source, overwrite=overwrite, report=report, sources=sources) as writer:
        items = clean_items(_items_csv(root / "movies.csv", report), report)
        by_id = {it["item_id"]: it for it in items}
        if (root / "links.csv").is_file():
            _merge_links(root / "links.csv", by_id, report)
        if (root / "tags.csv").is_file():
            _merge_tags(root / "tags.csv", by_id, report)
        for it in items:
            extra: dict[str, Any] = it["extra"]
            it["extra"] = extra_json(extra)
            it["tags"] = it["tags"] or None
        attach_images(writer, items, images_by_item_id(items, images), report)
        ratings = (
            ({k: r.get(c) for k, c in _RATING_COLUMNS_CSV.items()}, where)
            for r, where in read_delimited(root / "ratings.csv", report)
        )
        interactions = clean_interactions_table(ratings, set(by_id), report, rating_scale=RATING_SCALES["movielens"])
        writer.set_tables(items=items, interactions=interactions)
    return Path(out)
