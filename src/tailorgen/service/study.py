"""A human preference study: its definition (a TOML file), its votes (SQLite) and its results.

A study compares *arms*, ways of making an output for a user (I-AM-G against plain generation, a
generated next item against the recommended one, ...), in *pairs* of arms, each shown for many
users. Participants see a user's history and the two outputs in random left/right order and pick
one, or neither. Everything lives in one folder (``tailorgen study prepare``):

- ``study.sqlite``: the definition, the pairs with their images, the participants (token hashes)
  and the votes; WAL journal, one transaction per vote, ``synchronous=FULL`` so that a vote the
  server has answered survives a ``kill -9``; ``PRAGMA user_version`` is the schema version;
- ``images/``: the PNG of each (pair, arm), named by the pair's number, never by a user id;
- ``participants.csv``: each participant's link with their token (the secret that lets them vote).
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import re
import secrets
import sqlite3
import time
import tomllib
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

SCHEMA_VERSION = 1
ARM_KINDS = {"iamg": "I-AM-G's generator with `method` (full, rewrite, retrieval, plain)",
             "recommend": "the top-1 item UniMP recommends (its catalog image)",
             "generate": "the next item a Generate, Not Recommend model draws"}  # fmt: skip
PLAIN = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,63}")
CHOICES = ("left", "right", "neither")


@dataclass(frozen=True)
class Arm:
    name: str
    kind: str
    method: str = "full"


@dataclass(frozen=True)
class StudyDefinition:
    id: str
    question: str
    arms: tuple[Arm, ...]
    pairs: tuple[tuple[str, str], ...]
    participants: tuple[str, ...]
    users: int | tuple[str, ...] = 8
    seed: int = 0
    extra: dict = field(default_factory=dict)

    @classmethod
    def read(cls, path: str | Path) -> StudyDefinition:
        """Parse and check a study file; a bad one raises ValueError naming the file and the key."""
        path = Path(path)
        try:
            raw = tomllib.loads(path.read_text(encoding="utf-8"))
        except tomllib.TOMLDecodeError as e:
            raise ValueError(f"{path}: not TOML: {e}") from None
        return cls.from_dict(raw, str(path))

    @classmethod
    def from_dict(cls, raw: dict, where: str = "study") -> StudyDefinition:
        def need(ok: bool, key: str, allowed: str) -> None:
            if not ok:
                raise ValueError(f"{where}: {key}: {raw.get(key)!r} is not allowed; allowed: {allowed}")

        need(isinstance(raw.get("id"), str) and PLAIN.fullmatch(raw["id"]) is not None, "id", "a plain name")
        need(isinstance(raw.get("question"), str) and 0 < len(raw["question"]) <= 300, "question", "1-300 characters")
        arms = tuple(_arm(a, where) for a in raw.get("arms", []))
        names = [a.name for a in arms]
        need(len(arms) >= 2 and len(set(names)) == len(names), "arms", "two or more, with distinct names")
        pairs = tuple(tuple(p) for p in raw.get("pairs", []))
        need(bool(pairs) and all(len(p) == 2 and p[0] != p[1] and set(p) <= set(names) for p in pairs), "pairs",
             f"lists of two different arm names from {names}")  # fmt: skip
        people = tuple(raw.get("participants", []))
        need(bool(people) and all(isinstance(p, str) and PLAIN.fullmatch(p) for p in people)
             and len(set(people)) == len(people), "participants", "distinct plain names")  # fmt: skip
        users = raw.get("users", 8)
        need((isinstance(users, int) and 1 <= users <= 1000) or (isinstance(users, list) and bool(users)), "users",
             "a number of users to draw (1-1000) or a list of user ids")  # fmt: skip
        return cls(raw["id"], raw["question"], arms, pairs, people, users if isinstance(users, int) else tuple(users),
                   int(raw.get("seed", 0)))  # fmt: skip

    def as_dict(self) -> dict:
        return {"id": self.id, "question": self.question, "seed": self.seed,
                "users": self.users if isinstance(self.users, int) else list(self.users),
                "participants": list(self.participants), "pairs": [list(p) for p in self.pairs],
                "arms": [{"name": a.name, "kind": a.kind, "method": a.method} for a in self.arms]}  # fmt: skip


def _arm(raw: dict, where: str) -> Arm:
    name, kind = raw.get("name"), raw.get("kind")
    if not isinstance(name, str) or not PLAIN.fullmatch(name):
        raise ValueError(f"{where}: arms: name {name!r} is not allowed; allowed: a plain name")
    if kind not in ARM_KINDS:
        raise ValueError(f"{where}: arms.{name}: kind {kind!r} is not allowed; allowed: {sorted(ARM_KINDS)}")
    method = raw.get("method", "full")
    if kind == "iamg" and method not in ("full", "rewrite", "retrieval", "plain"):
        raise ValueError(
            f"{where}: arms.{name}: method {method!r} is not allowed; allowed: full, rewrite, retrieval, plain"
        )
    return Arm(name, kind, method)


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


SCHEMA = """
CREATE TABLE study (id TEXT PRIMARY KEY, question TEXT NOT NULL, definition TEXT NOT NULL, dataset TEXT NOT NULL);
CREATE TABLE pairs (pair_id INTEGER PRIMARY KEY, user_id TEXT NOT NULL, item_id TEXT, arm_a TEXT NOT NULL,
                    arm_b TEXT NOT NULL, image_a TEXT NOT NULL, image_b TEXT NOT NULL, history TEXT NOT NULL);
CREATE TABLE participants (participant TEXT PRIMARY KEY, token_sha256 TEXT NOT NULL);
CREATE TABLE votes (vote_id INTEGER PRIMARY KEY AUTOINCREMENT, participant TEXT NOT NULL REFERENCES participants,
                    pair_id INTEGER NOT NULL REFERENCES pairs, left_arm TEXT NOT NULL, right_arm TEXT NOT NULL,
                    choice TEXT NOT NULL CHECK (choice IN ('left', 'right', 'neither')), created_at REAL NOT NULL,
                    UNIQUE (participant, pair_id));
"""


class StudyStore:
    """The study's SQLite database. One connection per call: the server answers from several threads."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        if not self.path.is_file():
            raise ValueError(f"{self.path}: no study database (tailorgen study prepare makes one)")
        with self._connect() as db:
            version = db.execute("PRAGMA user_version").fetchone()[0]
        if version != SCHEMA_VERSION:
            raise ValueError(f"{self.path}: study schema version {version}; this tailorgen reads {SCHEMA_VERSION}")

    @staticmethod
    def create(path: Path, definition: StudyDefinition, dataset: str, pairs: list[dict], tokens: dict[str, str]):
        db = sqlite3.connect(path)
        with db:
            db.executescript(SCHEMA)
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("INSERT INTO study VALUES (?, ?, ?, ?)",
                       (definition.id, definition.question, json.dumps(definition.as_dict()), dataset))  # fmt: skip
            rows = [p | {"history": json.dumps(p["history"])} for p in pairs]
            db.executemany("INSERT INTO pairs VALUES (:pair_id, :user_id, :item_id, :arm_a, :arm_b, :image_a, "
                           ":image_b, :history)", rows)  # fmt: skip
            db.executemany("INSERT INTO participants VALUES (?, ?)", [(p, hash_token(t)) for p, t in tokens.items()])
            db.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
        db.close()

    @contextmanager
    def _connect(self) -> Iterator[sqlite3.Connection]:
        """A connection for one transaction: committed at the end of the block (rolled back on error), then closed."""
        db = sqlite3.connect(self.path, timeout=30)
        try:
            db.execute("PRAGMA synchronous=FULL")  # WAL + FULL: a committed vote is on disk before we answer
            db.row_factory = sqlite3.Row
            with db:
                yield db
        finally:
            db.close()

    def info(self) -> dict:
        with self._connect() as db:
            row = db.execute("SELECT id, question, definition, dataset FROM study").fetchone()
            n_pairs = db.execute("SELECT COUNT(*) FROM pairs").fetchone()[0]
        return {"id": row["id"], "question": row["question"], "definition": json.loads(row["definition"]),
                "dataset": row["dataset"], "pairs": n_pairs}  # fmt: skip

    def check_participant(self, participant: str, token: str) -> bool:
        with self._connect() as db:
            row = db.execute("SELECT token_sha256 FROM participants WHERE participant = ?", (participant,)).fetchone()
        return row is not None and secrets.compare_digest(hash_token(token), row["token_sha256"])

    def next_pair(self, participant: str, rng: np.random.Generator) -> dict | None:
        """A pair this participant has not voted on (a random one), in a random left/right order.

        The arms are not named (the study is blind): ``order`` ("ab" or "ba") says which image is
        left, and the vote sends it back."""
        with self._connect() as db:
            rows = db.execute("SELECT * FROM pairs WHERE pair_id NOT IN (SELECT pair_id FROM votes WHERE "
                              "participant = ?)", (participant,)).fetchall()  # fmt: skip
            done = db.execute("SELECT COUNT(*) FROM votes WHERE participant = ?", (participant,)).fetchone()[0]
        if not rows:
            return None
        row = dict(rows[int(rng.integers(len(rows)))])
        order = "ba" if rng.integers(2) else "ab"
        return {"pair_id": row["pair_id"], "user_id": row["user_id"], "history": json.loads(row["history"]),
                "order": order, "left": row[f"image_{order[0]}"], "right": row[f"image_{order[1]}"],
                "voted": done, "left_to_do": len(rows)}  # fmt: skip

    def vote(self, participant: str, pair_id: int, order: str, choice: str) -> int:
        """Record one vote in its own transaction (committed before this returns)."""
        if choice not in CHOICES:
            raise ValueError(f"choice: {choice!r} is not allowed; allowed: {list(CHOICES)}")
        if order not in ("ab", "ba"):
            raise ValueError(f"order: {order!r} is not allowed; allowed: 'ab', 'ba'")
        with self._connect() as db:
            pair = db.execute("SELECT arm_a, arm_b FROM pairs WHERE pair_id = ?", (pair_id,)).fetchone()
            if pair is None:
                raise LookupError(f"no pair {pair_id} in this study")
            left, right = (pair["arm_a"], pair["arm_b"]) if order == "ab" else (pair["arm_b"], pair["arm_a"])
            try:
                row = (participant, pair_id, left, right, choice, time.time())
                cur = db.execute("INSERT INTO votes (participant, pair_id, left_arm, right_arm, choice, created_at) "
                                 "VALUES (?, ?, ?, ?, ?, ?)", row)  # fmt: skip
            except sqlite3.IntegrityError:
                raise FileExistsError(f"{participant} has already voted on pair {pair_id}") from None
            return int(cur.lastrowid)

    def forget_user(self, user: str) -> dict:
        """Delete the user's pairs and every vote on them, leaving no trace in the file: secure_delete
        zeroes the freed pages, VACUUM rebuilds the file and the WAL is checkpointed and truncated.
        An explicit user list in the stored definition loses the user too. The pair numbers removed
        are returned, so the caller deletes their images."""
        with self._connect() as db:
            db.execute("PRAGMA secure_delete=ON")
            pairs = [r[0] for r in db.execute("SELECT pair_id FROM pairs WHERE user_id = ?", (user,))]
            votes = db.execute("DELETE FROM votes WHERE pair_id IN (SELECT pair_id FROM pairs WHERE user_id = ?)",
                               (user,)).rowcount  # fmt: skip
            db.execute("DELETE FROM pairs WHERE user_id = ?", (user,))
            definition = json.loads(db.execute("SELECT definition FROM study").fetchone()[0])
            if isinstance(definition["users"], list) and user in definition["users"]:
                definition["users"] = [u for u in definition["users"] if u != user]
                db.execute("UPDATE study SET definition = ?", (json.dumps(definition),))
        db = sqlite3.connect(self.path)
        try:
            db.execute("PRAGMA secure_delete=ON")
            db.execute("VACUUM")
            db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        finally:
            db.close()
        return {"pairs": pairs, "votes": votes}

    def votes(self) -> list[dict]:
        with self._connect() as db:
            rows = db.execute("SELECT v.*, p.user_id, p.arm_a, p.arm_b FROM votes v JOIN pairs p USING (pair_id) "
                              "ORDER BY vote_id").fetchall()  # fmt: skip
        return [dict(r) for r in rows]

    def votes_csv(self) -> str:
        buf = io.StringIO()
        columns = ["vote_id", "participant", "pair_id", "user_id", "left_arm", "right_arm", "choice", "created_at"]
        writer = csv.DictWriter(buf, columns, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(self.votes())
        return buf.getvalue()
