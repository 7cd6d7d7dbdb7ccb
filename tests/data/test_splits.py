"""k-core and splits on hand-built tables whose right answer is worked out in the comments."""

import json

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from tailorgen.data import INTERACTIONS_SCHEMA, DataError, DatasetWriter
from tailorgen.data.splits import (
    kcore,
    leave_one_out,
    list_splits,
    load_split,
    sliding_windows,
    split_dataset,
    user_split,
)


def _table(rows):
    """rows: (user, item, timestamp) or (user, item, timestamp, rating)."""
    return pa.Table.from_pylist(
        [{"user_id": r[0], "item_id": r[1], "timestamp": r[2], "rating": r[3] if len(r) > 3 else None} for r in rows],
        schema=INTERACTIONS_SCHEMA,
    )


def _triples(table):
    return list(zip(*(table.column(c).to_pylist() for c in ("user_id", "item_id", "timestamp"))))


# --------------------------------------------------------------------------------------------- k-core


def test_kcore_iterates_until_removing_a_user_no_longer_starves_an_item():
    # k=2. Pass 1: u4 (1 interaction) goes, so item C drops to 1 (only u3) and goes.
    # Pass 2: u3 is left with A alone and goes. A still has u1 and u2. Pass 3 removes nothing.
    # A single pass on the original counts would wrongly keep u3 and C.
    t = _table(
        [
            ("u1", "A", 1),
            ("u1", "B", 2),
            ("u2", "A", 1),
            ("u3", "C", 1),
            ("u2", "B", 3),
            ("u3", "A", 2),
            ("u4", "C", 5),
        ]
    )
    kept, stats = kcore(t, 2)
    assert _triples(kept) == [("u1", "A", 1), ("u1", "B", 2), ("u2", "A", 1), ("u2", "B", 3)]  # file order kept
    assert stats.iterations == 3
    assert (stats.users_before, stats.items_before, stats.interactions_before) == (4, 3, 7)
    assert (stats.users_after, stats.items_after, stats.interactions_after) == (2, 2, 4)


def test_kcore_separate_user_and_item_thresholds():
    t = _table(
        [("a", "X", 1), ("a", "Y", 2), ("a", "Z", 3), ("b", "X", 1), ("b", "Y", 2), ("c", "X", 1), ("c", "W", 2)]
    )
    # Users need 3: only a survives, with X, Y, Z; items need just 1.
    kept, stats = kcore(t, user_k=3)
    assert _triples(kept) == [("a", "X", 1), ("a", "Y", 2), ("a", "Z", 3)]
    assert (stats.user_k, stats.item_k) == (3, 0)
    # Items need 2: X (3) and Y (2) stay; Z and W go; users need only 1, so a, b and c stay.
    kept, _ = kcore(t, item_k=2)
    assert sorted(set(kept.column("item_id").to_pylist())) == ["X", "Y"]
    assert sorted(set(kept.column("user_id").to_pylist())) == ["a", "b", "c"]
    # k sets both, user_k overrides one side: users >= 3 and items >= 2 leaves nothing after a's Z goes.
    kept, stats = kcore(t, 2, user_k=3)
    assert len(kept) == 0 and (stats.user_k, stats.item_k) == (3, 2)


# --------------------------------------------------------------------------------------------- leave-one-out

# File order is shuffled across users. Sorted, user a is x@1, w@3, y@5, z@5: y and z tie at 5 and
# y comes first in the file, so z is the last interaction (test) and y the second-last (valid).
LOO_ROWS = [
    ("a", "x", 1),
    ("b", "p", 7),
    ("a", "y", 5),
    ("c", "m", 2),
    ("a", "z", 5),
    ("b", "q", 3),
    ("a", "w", 3),
    ("d", "k", 1),
    ("d", "l", 2),
    ("d", "n", 3),
]


def test_leave_one_out_by_time_with_ties_in_file_order():
    r = leave_one_out(_table(LOO_ROWS))
    assert _triples(r.tables["test"]) == [("a", "z", 5), ("d", "n", 3)]
    assert _triples(r.tables["valid"]) == [("a", "y", 5), ("d", "l", 2)]
    # b (2 interactions) and c (1) are too short: all of theirs goes to train, in time order.
    assert _triples(r.tables["train"]) == [
        ("a", "x", 1),
        ("a", "w", 3),
        ("b", "q", 3),
        ("b", "p", 7),
        ("c", "m", 2),
        ("d", "k", 1),
    ]
    short = r.notes["short_history_users"]
    assert (short["count"], short["ids"], short["went_to"]) == (2, ["b", "c"], "train")


def test_leave_one_out_tie_order_follows_the_file():
    swapped = list(LOO_ROWS)
    swapped[2], swapped[4] = swapped[4], swapped[2]  # now z comes before y in the file
    r = leave_one_out(_table(swapped))
    assert ("a", "y", 5) in _triples(r.tables["test"]) and ("a", "z", 5) in _triples(r.tables["valid"])


def test_leave_one_out_can_drop_short_users_but_still_lists_them():
    r = leave_one_out(_table(LOO_ROWS), short_history="drop")
    assert set(r.tables["train"].column("user_id").to_pylist()) == {"a", "d"}
    assert r.notes["short_history_users"]["ids"] == ["b", "c"]
    assert r.notes["short_history_users"]["went_to"] == "dropped"
    with pytest.raises(ValueError, match="short_history"):
        leave_one_out(_table(LOO_ROWS), short_history="test")


# --------------------------------------------------------------------------------------------- user-disjoint


def _many_users(n=20):
    return _table([(f"u{i:02d}", f"i{j}", j) for i in range(n) for j in range(i % 3 + 1)])


def _users(table):
    return set(table.column("user_id").to_pylist())


def test_user_split_is_disjoint_complete_and_sized_by_fractions():
    t = _many_users(20)
    r = user_split(t, (0.8, 0.1, 0.1), seed=0)
    parts = [_users(r.tables[p]) for p in ("train", "valid", "test")]
    assert [len(p) for p in parts] == [16, 2, 2]
    assert parts[0] | parts[1] | parts[2] == _users(t)
    assert not (parts[0] & parts[1] or parts[0] & parts[2] or parts[1] & parts[2])
    # Every user keeps all their interactions.
    assert sum(len(r.tables[p]) for p in ("train", "valid", "test")) == len(t)
    assert [len(_users(user_split(t, (0.5, 0.25, 0.25), seed=0).tables[p])) for p in ("train", "valid", "test")] == [
        10,
        5,
        5,
    ]


def test_user_split_reproduces_with_a_seed_and_changes_with_another():
    t = _many_users(20)
    a, b, c = (user_split(t, seed=s) for s in (1, 1, 2))
    assert all(a.tables[p].equals(b.tables[p]) for p in ("train", "valid", "test"))
    assert _users(a.tables["test"]) != _users(c.tables["test"])
    # The assignment depends on the users, not on the row order of the file.
    d = user_split(t.take(pa.array(list(range(len(t)))[::-1])), seed=1)
    assert _users(d.tables["test"]) == _users(a.tables["test"])


def test_user_split_rejects_bad_fractions():
    with pytest.raises(ValueError, match="summing to 1"):
        user_split(_many_users(), (0.8, 0.3, 0.1))


# --------------------------------------------------------------------------------------------- windows


def _seq_user(user, n, t0=100):
    return [(user, f"{user}{k}", t0 + k) for k in range(n)]


def _windows(r):
    w = r.tables["windows"]
    return list(
        zip(w.column("user_id").to_pylist(), w.column("history").to_pylist(), w.column("target_item_id").to_pylist())
    )


def test_full_windows_slide_one_by_one():
    # s has 6 items s0..s5, t has 3 (too short for a 3-item history plus a target).
    r = sliding_windows(_table(_seq_user("t", 3) + _seq_user("s", 6)), history_len=3)
    assert _windows(r) == [
        ("s", ["s0", "s1", "s2"], "s3"),
        ("s", ["s1", "s2", "s3"], "s4"),
        ("s", ["s2", "s3", "s4"], "s5"),
    ]
    assert r.tables["windows"].column("target_timestamp").to_pylist() == [103, 104, 105]
    assert r.notes["users_without_window"]["ids"] == ["t"]


def test_stride_is_anchored_at_the_latest_item():
    r = sliding_windows(_table(_seq_user("s", 6)), history_len=3, stride=2)
    # Targets s5 and s3 (s1 would need a 3-item history).
    assert _windows(r) == [("s", ["s0", "s1", "s2"], "s3"), ("s", ["s2", "s3", "s4"], "s5")]


def test_min_history_allows_short_windows_at_the_start():
    r = sliding_windows(_table(_seq_user("s", 5) + _seq_user("t", 1)), history_len=3, min_history=1)
    assert _windows(r) == [
        ("s", ["s0"], "s1"),
        ("s", ["s0", "s1"], "s2"),
        ("s", ["s0", "s1", "s2"], "s3"),
        ("s", ["s1", "s2", "s3"], "s4"),
    ]
    assert r.notes["users_without_window"]["ids"] == ["t"]
    with pytest.raises(ValueError, match="min_history"):
        sliding_windows(_table(_seq_user("s", 5)), history_len=3, min_history=4)


# --------------------------------------------------------------------------------------------- on disk


@pytest.fixture
def dataset(tmp_path):
    rows = [*LOO_ROWS, *_seq_user("s", 6)]
    items = sorted({r[1] for r in rows})
    with DatasetWriter(tmp_path / "ds", source={"format": "test"}) as w:
        w.set_tables(
            items=[{"item_id": i, "title": i} for i in items],
            interactions=[{"user_id": u, "item_id": i, "timestamp": t, "rating": 4.0} for u, i, t in rows],
        )
    return tmp_path / "ds"


def test_split_files_are_written_with_hashes_and_reload(dataset):
    meta = split_dataset(dataset, "loo")
    folder = dataset / "splits" / "loo"
    assert sorted(p.name for p in folder.iterdir()) == ["split.json", "test.parquet", "train.parquet", "valid.parquet"]
    on_disk = json.loads((folder / "split.json").read_text())
    assert on_disk["method"] == "loo" and on_disk["counts"]["test"] == {"rows": 3, "users": 3, "items": 3}
    assert on_disk["notes"]["short_history_users"]["ids"] == ["b", "c"]
    assert set(on_disk["inputs"]) == {"interactions.parquet"}
    assert meta["outputs"] == on_disk["outputs"]

    split = load_split(dataset, "loo")
    assert split.method == "loo"
    assert _triples(split["test"]) == [("a", "z", 5), ("d", "n", 3), ("s", "s5", 105)]
    assert split["train"].schema.equals(INTERACTIONS_SCHEMA)
    assert split["train"].column("rating").to_pylist()[0] == 4.0
    assert list_splits(dataset) == ["loo"]
    with pytest.raises(KeyError, match="no part 'windows'"):
        split["windows"]


def test_rerunning_a_split_gives_byte_identical_parquet(dataset):
    for name in ("first", "second"):
        split_dataset(dataset, "window", name, history_len=2, stride=1)
    for name in ("first", "second"):
        split_dataset(dataset, "user", f"user-{name}", seed=3)
    for a, b in [("first", "second"), ("user-first", "user-second")]:
        files = sorted(p.name for p in (dataset / "splits" / a).glob("*.parquet"))
        assert files
        for f in files:
            assert (dataset / "splits" / a / f).read_bytes() == (dataset / "splits" / b / f).read_bytes()
        ja, jb = (json.loads((dataset / "splits" / n / "split.json").read_text()) for n in (a, b))
        assert ja["outputs"] == jb["outputs"]


def test_kcore_prefilter_and_kcore_method(dataset):
    meta = split_dataset(dataset, "kcore", k=2)
    kept = load_split(dataset, "kcore")["interactions"]
    # Every item here has exactly one interaction, so k=2 on items empties the table.
    assert len(kept) == 0 and meta["kcore"]["iterations"] == 2
    meta = split_dataset(dataset, "loo", "loo-u3", user_k=3)
    assert meta["kcore"]["users_after"] == 3  # a, d and s
    assert meta["notes"]["short_history_users"]["count"] == 0
    with pytest.raises(ValueError, match="needs k"):
        split_dataset(dataset, "kcore", "k-none")


def test_existing_splits_are_kept_unless_overwrite(dataset):
    split_dataset(dataset, "user", seed=0)
    before = (dataset / "splits" / "user" / "train.parquet").read_bytes()
    with pytest.raises(FileExistsError, match="overwrite"):
        split_dataset(dataset, "user", seed=1)
    assert (dataset / "splits" / "user" / "train.parquet").read_bytes() == before
    split_dataset(dataset, "user", seed=1, overwrite=True)
    assert load_split(dataset, "user").meta["seed"] == 1


def test_load_split_detects_damage_and_stale_inputs(dataset):
    split_dataset(dataset, "loo")
    path = dataset / "splits" / "loo" / "valid.parquet"
    good = path.read_bytes()
    pq.write_table(pq.read_table(path).slice(0, 1), path)
    with pytest.raises(DataError, match="valid.parquet: content hash differs"):
        load_split(dataset, "loo")
    path.write_bytes(good)

    inter = pq.read_table(dataset / "interactions.parquet")
    pq.write_table(inter.slice(1), dataset / "interactions.parquet")
    with pytest.raises(DataError, match="changed since split 'loo' was made"):
        load_split(dataset, "loo")
    assert len(load_split(dataset, "loo", allow_stale=True)["test"]) == 3
    with pytest.raises(FileNotFoundError, match=r"no split 'nope'.*\(have: loo\)"):
        load_split(dataset, "nope")
