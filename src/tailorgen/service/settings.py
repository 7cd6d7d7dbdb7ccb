"""What a server runs with. Every limit here bounds what one request can make the machine do."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

ENGINES = ("iamg", "unimp", "gnr")


@dataclass(frozen=True)
class ServiceSettings:
    dataset: Path
    outputs: Path = Path("runs/serve")  # generated images and their records, one folder per request
    keep_outputs: int = 5000  # request folders kept; the oldest go first
    generator: Path | None = None  # I-AM-G's pipeline (default: the shipped one)
    unimp: Path | None = None  # a unified model (default: the shipped one, which answers for the demo shop)
    gnr: Path | None = None  # a Generate, Not Recommend model (none by default: the endpoint says so)
    engines: tuple[str, ...] = ENGINES  # which to load
    device: str = "cpu"
    # Generation saturates both cores with one request, so one runs at a time; the queue bounds the wait.
    image_workers: int = 1
    image_queue: int = 8
    # Answers (recommend, search, rate, explain) take milliseconds to a second: their own lane, so
    # they do not wait behind images.
    answer_workers: int = 1
    answer_queue: int = 64
    max_body_bytes: int = 16_384
    studies: tuple[Path, ...] = ()  # study folders (tailorgen study prepare) served at /study/ID
    token: str | None = None  # guards the endpoints that change data (forgetting a user); none: refused

    def __post_init__(self):
        unknown = sorted(set(self.engines) - set(ENGINES))
        if unknown:
            raise ValueError(f"engines: unknown {unknown}; choose from {list(ENGINES)}")
        for name in ("image_workers", "answer_workers"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.token is not None and len(self.token) < 16:
            raise ValueError("token: at least 16 characters (a guessable token guards nothing)")
        for name in ("image_queue", "answer_queue"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)}")
