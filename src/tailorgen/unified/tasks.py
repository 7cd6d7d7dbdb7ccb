"""A dataset's users and queries as the unified model's examples, split the way the benchmark holds out.

``holdout="last"`` is chronological leave-one-out (``data.splits.leave_one_out``): per user the
last interaction is the test, the second-last the validation, the rest trains; per user the last
query is the test query. Training examples only ever *show* training interactions: a history, a
rated item and a query's history all come from the training part, so no held-out item is read,
even as context. ``holdout="none"`` trains on everything (a model to deploy, not to measure).

Tasks and their examples (each from one user's chronological training history ``s_1..s_n``; every
example has a history, so ``s_1`` is never a target):
- recommendation: for each j >= 2, the history before ``s_j`` -> ``s_j``;
- rating: for each rated ``s_j`` (j >= 2), the history before it -> its rating;
- explanation: for each reviewed ``s_j`` (j >= 2), the history before it -> its review;
- search: for each training query, the history before the query's time -> its target item;
- image_generation: for each j >= 2, the history before ``s_j`` (and keywords the trainer draws from
  ``s_j``'s tags) -> ``s_j``'s image; and once per catalog item with no history (the catalog is
  public: an item's own image says nothing of any user).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa

from tailorgen.data import Dataset
from tailorgen.data.splits import leave_one_out
from tailorgen.unified.serialize import TASKS, Event, Example

HOLDOUTS = ("last", "none")


def _value(x):
    return None if x is None or (isinstance(x, float) and x != x) else x


def events_by_user(rows: list[dict]) -> dict[str, list[tuple[int, Event]]]:
    by_user: dict[str, list[tuple[int, Event]]] = defaultdict(list)
    for r in rows:
        review = _value(r.get("review"))
        event = Event(r["item_id"], _value(r.get("rating")), review.strip() if review else None)
        by_user[r["user_id"]].append((int(r["timestamp"]), event))
    for events in by_user.values():
        events.sort(key=lambda te: te[0])
    return by_user


@dataclass
class TaskSplit:
    """Training examples per task, and the held-out test (and validation) examples per task."""

    train: dict[str, list[Example]] = field(default_factory=dict)
    valid: dict[str, list[Example]] = field(default_factory=dict)
    test: dict[str, list[Example]] = field(default_factory=dict)
    train_items: set[str] = field(default_factory=set)  # items some training example shows or answers
    histories: dict[str, list[Event]] = field(default_factory=dict)  # every user's full history, in order
    train_histories: dict[str, list[Event]] = field(default_factory=dict)  # ... its training part
    history_times: dict[str, np.ndarray] = field(default_factory=dict)  # ... and its timestamps


def _examples_of(user: str, history: Sequence[Event], e: Event, tasks: Sequence[str]) -> list[Example]:
    """The examples one interaction gives after ``history``: the item, its rating, its review."""
    history, out = tuple(history), []
    if "recommendation" in tasks:
        out.append(Example(user, "recommendation", history, e.item))
    if "rating" in tasks and e.rating is not None:
        out.append(Example(user, "rating", history, e.item, rating=e.rating))
    if "explanation" in tasks and e.review:
        out.append(Example(user, "explanation", history, e.item, review=e.review))
    if "image_generation" in tasks:
        out.append(Example(user, "image_generation", history, e.item))
    return out


def build_task_split(dataset: Dataset, tasks: Sequence[str] = TASKS, holdout: str = "last") -> TaskSplit:
    if holdout not in HOLDOUTS:
        raise ValueError(f"holdout must be one of {HOLDOUTS}, not {holdout!r}")
    unknown = [t for t in tasks if t not in TASKS]
    if unknown:
        raise ValueError(f"unknown task(s) {unknown}; tasks are {', '.join(TASKS)}")
    interactions = dataset.interactions
    if holdout == "last":
        split = leave_one_out(interactions)
        parts = {name: events_by_user(t.to_pylist()) for name, t in split.tables.items()}
    else:
        parts = {"train": events_by_user(interactions.to_pylist()), "valid": {}, "test": {}}
    out = TaskSplit(train={t: [] for t in tasks}, valid={t: [] for t in tasks}, test={t: [] for t in tasks})
    for user, timed in parts["train"].items():
        train_events = [e for _, e in timed]
        for j in range(1, len(train_events)):  # every example has a history: s_1 is never a target
            for ex in _examples_of(user, train_events[:j], train_events[j], tasks):
                out.train[ex.task].append(ex)
        out.train_items.update(e.item for e in train_events)
        out.train_histories[user] = train_events
        later = [*parts["valid"].get(user, []), *parts["test"].get(user, [])]
        out.histories[user] = train_events + [e for _, e in later]
        out.history_times[user] = np.array([t for t, _ in [*timed, *later]], np.int64)
        for name, (_, e) in zip(("valid", "test"), later, strict=False):
            history = out.histories[user][: len(train_events) + (name == "test")]
            for ex in _examples_of(user, history, e, tasks):
                getattr(out, name)[ex.task].append(ex)
    if "search" in tasks and dataset.queries is not None:
        _search_examples(out, dataset.queries, parts["train"], holdout)
    if "image_generation" in tasks:
        items = dataset.items.column("item_id").to_pylist()
        out.train["image_generation"] += [Example("", "image_generation", (), i) for i in items]
    return out


def _search_examples(out: TaskSplit, queries: pa.Table, train: dict, holdout: str) -> None:
    """Training queries see only the training history before their time; each user's last query is
    the test, and sees the user's whole history before its time."""
    by_user: dict[str, list[dict]] = defaultdict(list)
    for q in queries.to_pylist():
        by_user[q["user_id"]].append(q)
    for user, qs in by_user.items():
        qs.sort(key=lambda q: (int(q["timestamp"]), q["query_id"]))
        held = qs[-1:] if holdout == "last" else []
        train_times = np.array([t for t, _ in train.get(user, [])], np.int64)
        train_events = [e for _, e in train.get(user, [])]
        for q in qs[: len(qs) - len(held)]:
            n = int(np.searchsorted(train_times, int(q["timestamp"]), side="left"))
            out.train["search"].append(_query_example(user, train_events[:n], q))
        for q in held:
            times = out.history_times.get(user, np.array([], np.int64))
            n = int(np.searchsorted(times, int(q["timestamp"]), side="left"))
            out.test["search"].append(_query_example(user, out.histories.get(user, [])[:n], q))


def _query_example(user: str, history: Sequence[Event], q: dict) -> Example:
    return Example(user, "search", tuple(history), q["target_item_id"], query=q["query"])
