"""Write files and whole directories so that a crash never leaves a half-written result.

Files go to a temporary sibling and are renamed into place; directories are built
in a temporary sibling and swapped in only once complete.

``atomic_dir`` also decides what an overwrite may replace: never an empty path, never a file,
never a folder that holds (or is) one of the command's own inputs (``protect``), and, when the
caller says what its outputs look like (``replaceable``), never a folder that is not one of
them. A symlinked output replaces the folder the link points to and keeps the link. SIGTERM and
SIGHUP end the block like Ctrl-C does, so the temporary folder is removed on every signal a
process can catch; a folder left by a killed process (SIGKILL, power loss) is removed by the
next write to the same path once its process is gone.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import tempfile
import threading
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path

# Signals whose default action would end the process without running `finally` blocks.
_CATCHABLE_ENDS = tuple(getattr(signal, name) for name in ("SIGTERM", "SIGHUP") if hasattr(signal, name))


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


@contextlib.contextmanager
def atomic_dir(
    path: str | os.PathLike,
    overwrite: bool = False,
    *,
    replaceable: Callable[[Path], bool] | None = None,
    protect: Iterable[str | os.PathLike] = (),
    what: str = "output",
) -> Iterator[Path]:
    """Yield a temporary directory that replaces ``path`` only if the block succeeds.

    If ``path`` exists and ``overwrite`` is false, fail before doing any work so an
    existing dataset is never touched. With ``overwrite``, the old directory is moved
    aside, the new one renamed in, and only then is the old one deleted.

    ``replaceable(existing_dir)`` says whether an existing folder is one this writer may replace
    (e.g. it has a tailorgen manifest); ``protect`` lists paths the command reads, which the
    output must neither be nor contain; ``what`` names the output in messages.
    """
    target = check_output_dir(path, overwrite, replaceable=replaceable, protect=protect, what=what)
    target.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_partials(target)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.partial-{os.getpid()}-", dir=target.parent))
    try:
        with _signals_raise():
            yield tmp
            with _signals_held():
                _swap_in(tmp, target)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def check_output_dir(
    path: str | os.PathLike,
    overwrite: bool,
    *,
    replaceable: Callable[[Path], bool] | None = None,
    protect: Iterable[str | os.PathLike] = (),
    what: str = "output",
) -> Path:
    """The resolved folder ``atomic_dir`` would write, after every check; raises before any work is done."""
    if not os.fspath(path).strip():
        raise ValueError(f"the {what} folder is an empty path; give a folder name")
    shown = os.fspath(path)
    target = Path(path).resolve()  # a symlink's target: the link stays and points at the new folder
    if target.parent == target:
        raise ValueError(f"{shown} is the file system root; give a folder of its own for the {what}")
    for source in protect:
        if Path(source).resolve().is_relative_to(target):
            raise ValueError(
                f"the {what} folder {shown} is or holds {os.fspath(source)}, which this command reads; "
                "choose another folder"
            )
    if not os.path.lexists(target):
        return target
    if not overwrite:
        raise FileExistsError(f"{shown} already exists; pass overwrite=True (CLI: --overwrite) to replace it")
    if not target.is_dir():
        raise FileExistsError(f"{shown} is a file, not a {what} folder; refusing to replace it")
    if replaceable is not None and not replaceable(target):
        raise FileExistsError(
            f"{shown} exists and is not a tailorgen {what}, so --overwrite will not replace it; "
            "remove it yourself or choose another folder"
        )
    return target


def _swap_in(tmp: Path, target: Path) -> None:
    old = target.with_name(f".{target.name}.old-{os.getpid()}")
    if os.path.lexists(old):
        shutil.rmtree(old)
    if os.path.lexists(target):
        os.replace(target, old)
    os.replace(tmp, target)
    shutil.rmtree(old, ignore_errors=True)


_LEFTOVER = re.compile(r"\.(?:partial-(\d+)-.*|old-(\d+))$")


def remove_stale_partials(target: Path) -> list[Path]:
    """Remove temporary folders of ``target`` whose writing process no longer runs; returns them."""
    removed = []
    if not target.parent.is_dir():
        return removed
    prefix = f".{target.name}."
    for sibling in target.parent.iterdir():
        if not sibling.name.startswith(prefix) or sibling.is_symlink() or not sibling.is_dir():
            continue
        m = _LEFTOVER.fullmatch(sibling.name[len(prefix) - 1 :])
        if m and not _process_alive(int(m.group(1) or m.group(2))):
            shutil.rmtree(sibling, ignore_errors=True)
            removed.append(sibling)
    return removed


def _process_alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process
        return True
    return True


class Terminated(SystemExit):
    """SIGTERM or SIGHUP arrived while an output was being written; the exit status is 128 + the signal."""

    def __init__(self, signum: int):
        super().__init__(128 + signum)
        self.signum = signum


def _raise_on_signal(signum, frame):
    raise Terminated(signum)


@contextlib.contextmanager
def _signals_raise() -> Iterator[None]:
    """While the block runs, SIGTERM/SIGHUP raise ``Terminated`` (like Ctrl-C raises), so cleanup runs.

    Only where nobody installed a handler of their own, and only in the main thread (Python
    delivers signals there and allows handlers only there).
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    installed = {}
    for sig in _CATCHABLE_ENDS:
        if signal.getsignal(sig) is signal.SIG_DFL:
            installed[sig] = signal.signal(sig, _raise_on_signal)
    try:
        yield
    finally:
        for sig, previous in installed.items():
            signal.signal(sig, previous)


@contextlib.contextmanager
def _signals_held() -> Iterator[None]:
    """Hold SIGINT/SIGTERM/SIGHUP during the swap, so no signal can leave the output missing or doubled."""
    if not hasattr(signal, "pthread_sigmask"):
        yield
        return
    held = {signal.SIGINT, *_CATCHABLE_ENDS}
    previous = signal.pthread_sigmask(signal.SIG_BLOCK, held)
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, previous)
