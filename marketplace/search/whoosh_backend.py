"""The Whoosh backend: an index directory with atomic generations and one writer at a time.

Layout under SEARCH_INDEX_DIR::

    CURRENT            name of the live index folder (replaced atomically)
    writer.lock        flock()ed by whoever writes: the outbox writer, a rebuild
    writer.json        the writer's last reported state (see health.py)
    gen-<time>-<rand>/ a complete Whoosh index, with DATABASE (the database it was
                       built from, see identity.py) and SCHEMA_VERSION beside it

Searches read CURRENT and the folder's latest Whoosh generation on every query (a file
read and a directory listing) and never take the writer lock, so they are never blocked
by writers and keep running during a rebuild, which builds a new folder and then swaps
CURRENT. The previous folder is kept until the next rebuild so searches that opened it
finish undisturbed.

Queries are answered by one of two engines, chosen with SEARCH_ENGINE: "fast" (engine.py:
numpy over Whoosh's segment files, through whoosh_internals) or "whoosh" (whoosh_engine.py:
Whoosh's own Searcher, public API only). They give the same answers (the differential
test holds them to it). The fast engine's rebuild writes segments with
whoosh_internals.SegmentBuilder; the whoosh engine's uses Whoosh's own writer, so that setting SEARCH_ENGINE=whoosh is enough
to run without any Whoosh internals (e.g. on a Whoosh version the fast path was not
proven against).
"""
from __future__ import annotations

import errno
import fcntl
import gc
import logging
import multiprocessing
import os
import queue
import secrets
import shutil
import time
import traceback
from contextlib import contextmanager, nullcontext
from pathlib import Path
from typing import Callable, Iterable, Sequence

from whoosh import index as whoosh_index

from .backend import DocumentRejected, IndexBusy, LoadChunk, SearchBackend, SearchHits, SearchQuery  # noqa: F401 (re-exported)
from .backend import take_writer_lock
from .documents import SearchDoc
from .identity import read_stamp, write_stamp
from .schema import SCHEMA_VERSION, build_schema

log = logging.getLogger(__name__)

SEGMENT_DOCS = 25_000  # documents per segment a rebuild worker writes
_RACY_NS = 100_000_000  # 0.1 s: timestamps younger than this are not trusted


ENGINES = ("fast", "whoosh")


def make_engine(name: str, cache_postings: int = 16_000_000):
    """The query engine called `name` (SEARCH_ENGINE). Only "fast" imports the fast engine,
    and with it whoosh_internals' version check."""
    if name == "fast":
        from .engine import Engine

        return Engine(postings_budget=cache_postings)
    if name == "whoosh":
        from .whoosh_engine import WhooshEngine

        return WhooshEngine()
    raise ValueError(f"SEARCH_ENGINE must be one of {', '.join(ENGINES)}, not {name!r}")


class WhooshBackend(SearchBackend):
    def __init__(self, base_dir: str | os.PathLike, *, engine: str = "fast", cache_postings: int = 16_000_000):
        self.base = Path(base_dir)
        self._base_str = str(self.base)
        self._current_path = os.path.join(self._base_str, "CURRENT")
        self._seen = None
        self.engine_name = engine
        self.engine = make_engine(engine, cache_postings)
        self._dirname: str | None = None
        self._ix = None
        self._reader = None
        self._gen = -1
        self._view = None

    # ---------------------------------------------------------------- locking

    @contextmanager
    def lock(self, wait: bool = True, timeout: float = 600.0):
        """The writer lock (across processes and threads). Raises IndexBusy if not `wait`
        and someone else holds it, or after `timeout` seconds."""
        self.base.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.base / "writer.lock", os.O_RDWR | os.O_CREAT, 0o644)

        def try_once() -> bool:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError as e:
                if e.errno not in (errno.EAGAIN, errno.EACCES):
                    raise
                return False
            return True

        try:
            take_writer_lock(try_once, wait, timeout)
            try:
                yield
            finally:
                fcntl.flock(fd, fcntl.LOCK_UN)
        finally:
            os.close(fd)

    # ---------------------------------------------------------------- folders

    def _current_name(self) -> str | None:
        try:
            name = (self.base / "CURRENT").read_text().strip()
        except FileNotFoundError:
            return None
        return name if name and (self.base / name).is_dir() else None

    def _set_current(self, name: str) -> None:
        tmp = self.base / f"CURRENT.{os.getpid()}.tmp"
        tmp.write_text(name + "\n")
        os.replace(tmp, self.base / "CURRENT")  # atomic: readers see the old or the new name

    def _new_folder(self, stamp: dict | None = None) -> Path:
        name = time.strftime("gen-%Y%m%d-%H%M%S-") + secrets.token_hex(3)
        path = self.base / name
        path.mkdir(parents=True)
        whoosh_index.create_in(str(path), build_schema())
        (path / "SCHEMA_VERSION").write_text(str(SCHEMA_VERSION))
        if stamp is not None:
            write_stamp(path, stamp)
        return path

    def has_index(self) -> bool:
        return self._current_name() is not None

    def ensure_index(self, stamp: dict | None = None) -> None:
        """Create an empty live index if there is none (caller holds the lock), recording
        `stamp` (identity.fingerprint()) as the database it belongs to."""
        if self._current_name() is None:
            self._set_current(self._new_folder(stamp).name)

    def index_stamp(self) -> dict | None:
        """The database the live index was built from (identity.read_stamp), if recorded."""
        name = self._current_name()
        return None if name is None else read_stamp(self.base / name)

    def current_folder(self) -> str | None:
        return self._current_name()

    def _writable_index(self):
        self.ensure_index()
        return whoosh_index.open_dir(str(self.base / self._current_name()))

    def schema_version(self) -> int | None:
        name = self._current_name()
        if name is None:
            return None
        try:
            return int((self.base / name / "SCHEMA_VERSION").read_text())
        except (FileNotFoundError, ValueError):
            return None

    # ---------------------------------------------------------------- reading

    def _fingerprint(self):
        """(CURRENT's inode and mtime, the live folder's mtime), or None when it cannot
        be trusted: like git's racy-index rule, a timestamp younger than the clock's
        granularity could hide a second change made within the same tick."""
        try:
            cur = os.stat(self._current_path)
            name = self._dirname
            if name is None:
                return None
            folder = os.stat(os.path.join(self._base_str, name))
        except FileNotFoundError:
            return None
        now = time.time_ns()
        if now - cur.st_mtime_ns < _RACY_NS or now - folder.st_mtime_ns < _RACY_NS:
            return None
        return (cur.st_ino, cur.st_mtime_ns, folder.st_mtime_ns)

    def view(self):
        """The engine's view of the live generation (refreshed when it changed)."""
        with self.engine.lock:
            if self._view is not None and self._seen is not None and self._fingerprint() == self._seen:
                return self._view
            seen, before = self._fingerprint(), self._dirname
            name = self._current_name()
            if name is None:
                return None
            for attempt in range(3):
                try:
                    if name != self._dirname:
                        ix = whoosh_index.open_dir(str(self.base / name))
                        gen = ix.latest_generation()
                        self._swap_reader(ix, name, gen)
                    else:
                        gen = self._ix.latest_generation()
                        if gen != self._gen:
                            self._swap_reader(self._ix, name, gen)
                    # The fingerprint taken before reading: a change after it shows next time.
                    self._seen = seen if self._dirname == before else None
                    return self._view
                except (FileNotFoundError, OSError, whoosh_index.EmptyIndexError):
                    # A merge removed files between listing and opening: read again.
                    if attempt == 2:
                        raise
                    time.sleep(0.01)
                    name = self._current_name()
            return self._view  # pragma: no cover

    def _swap_reader(self, ix, name: str, gen: int) -> None:
        reader = ix.reader()
        old = self._reader
        self._ix, self._dirname, self._reader = ix, name, reader
        self._gen = gen
        self._view = self.engine.view(reader, gen)
        if old is not None:
            try:
                old.close()
            except Exception:  # pragma: no cover - closing is best effort
                pass

    def close(self) -> None:
        """Close the reader (its files); the next search opens the live generation again."""
        with self.engine.lock:
            if self._reader is not None:
                self._reader.close()
            self._ix = self._reader = self._view = self._dirname = self._seen = None
            self._gen = -1

    def search(self, q: SearchQuery) -> SearchHits:
        with self.engine.lock:
            view = self.view()
            if view is None:
                return SearchHits(0, [], {})
            return self.engine.search(
                view, q.parsed, principals=q.principals, filters=q.filters, not_filters=q.not_filters,
                exclude_keys=q.exclude_keys, sort=q.sort, offset=q.offset, limit=q.limit, facets=q.facets)

    def visible_count(self, term: str, principals: Sequence[str]) -> int:
        with self.engine.lock:
            view = self.view()
            return 0 if view is None else self.engine.visible_df(view, term, tuple(principals))

    def shown_keys(self, keys: Sequence[str], principals: Sequence[str]) -> list[str]:
        with self.engine.lock:
            view = self.view()
            return [] if view is None else self.engine.shown(view, keys, tuple(principals))

    def similar_terms(self, term: str, maxdist: int) -> list[str]:
        with self.engine.lock:
            if self.view() is None:
                return []
            prefix = 2 if len(term) >= 6 else 1
            out: set[str] = set()
            for segreader, _offset in self._reader.leaf_readers():
                for t in segreader.terms_within("text", term, maxdist, prefix=prefix):
                    out.add(t.decode("utf-8") if isinstance(t, bytes) else t)
            out.discard(term)
            return sorted(out)

    def stored_documents(self) -> list[dict]:
        """The stored fields of every live document (what `search verify` compares, and
        what a test checks holds nothing private)."""
        with self.engine.lock:
            if self.view() is None:
                return []
            return [stored for _docnum, stored in self._reader.iter_docs()]

    def digests(self) -> dict[str, str]:
        out: dict[str, str] = {}
        for stored in self.stored_documents():
            if stored.get("key") in out:
                out[stored["key"] + "#duplicate"] = stored.get("digest", "")
            out[stored.get("key")] = stored.get("digest", "")
        return out

    def stale_keys(self, now_epoch: int) -> list[str]:
        with self.engine.lock:
            view = self.view()
            return [] if view is None else self.engine.stale_keys(view, now_epoch)

    def stats(self) -> dict:
        with self.engine.lock:
            view = self.view()
            name = self._current_name()
            size = 0
            if name:
                size = sum(p.stat().st_size for p in (self.base / name).iterdir() if p.is_file())
            if view is None:
                return {"folder": None, "documents": 0, "segments": [], "size_bytes": 0,
                        "engine": self.engine.stats()}
            reader = self._reader
            return {
                "folder": name,
                "generation": view.generation,
                "schema_version": self.schema_version(),
                "documents": reader.doc_count(),
                "deleted": reader.doc_count_all() - reader.doc_count(),
                "segments": [r.doc_count_all() for r, _offset in reader.leaf_readers() if r.doc_count_all()],
                "size_bytes": size,
                "engine": self.engine.stats(),
            }

    # ---------------------------------------------------------------- writing

    def write(self, upserts: Iterable[SearchDoc], deletes: Iterable[str]) -> None:
        """Replace/insert and delete documents in one Whoosh commit; the caller holds lock()."""
        upserts = list(upserts)
        keys = set(deletes) | {d.key for d in upserts}
        if not keys:
            return
        ix = self._writable_index()
        w = ix.writer()
        try:
            with w.searcher() as s:
                for key in sorted(keys):
                    w.delete_by_term("key", key, searcher=s)
            for doc in upserts:
                try:
                    w.add_document(**doc.fields())
                except Exception as e:
                    raise DocumentRejected(doc.key) from e
            w.commit()
        except BaseException:
            # A failed add *or commit* (e.g. a merge that cannot read a segment) must not
            # leave Whoosh's own lock held or its temporary files behind: cancel.
            _cancel(w)
            raise

    def rebuild(self, chunks: Sequence[tuple[str, Sequence[int]]], load: LoadChunk, *, procs: int = 2,
                progress: Callable[[int], None] | None = None, child_init: Callable[[], None] | None = None,
                after_build: Callable[[], None] | None = None, builder: str = "fast",
                stamp: dict | None = None, locked: bool = False) -> dict:
        """Build a new folder from `chunks`, then swap it in. With SEARCH_ENGINE=fast, `procs`
        worker processes write segments with `builder`: "fast" (whoosh_internals.SegmentBuilder) or
        "whoosh" (Whoosh's own segment writer, one per process as Whoosh's multi-process writer
        does). With SEARCH_ENGINE=whoosh, one Whoosh writer in this process (public API only).

        The writer lock is held throughout, so outbox jobs committed meanwhile wait in the
        outbox and are applied to the new index after the swap (`after_build` runs while
        the lock is still held, e.g. to apply them before anyone else writes). `stamp`
        records the database the index is built from; `locked` says the caller already
        holds lock().
        """
        started = time.monotonic()
        with (nullcontext() if locked else self.lock(wait=True, timeout=3600.0)):
            folder = self._new_folder(stamp)
            try:
                if self.engine_name == "fast":
                    from .whoosh_internals import BUILDERS, commit_segments

                    if builder not in BUILDERS:
                        raise ValueError(f"unknown index builder {builder!r} (choose from {', '.join(BUILDERS)})")
                    segments, count = _build_segments(folder, list(chunks), load, procs, progress, child_init,
                                                      BUILDERS[builder])
                    commit_segments(whoosh_index.open_dir(str(folder)), segments)
                else:
                    count = _build_with_whoosh_writer(folder, chunks, load, progress)
                for tmp in folder.glob("*.tmp"):
                    shutil.rmtree(tmp, ignore_errors=True)
            except BaseException:
                shutil.rmtree(folder, ignore_errors=True)
                raise
            previous = self._current_name()
            self._set_current(folder.name)
            for path in self.base.iterdir():
                if path.is_dir() and path.name.startswith("gen-") and path.name not in (folder.name, previous):
                    shutil.rmtree(path, ignore_errors=True)
            if after_build is not None:
                after_build()
        elapsed = time.monotonic() - started
        return {"documents": count, "seconds": elapsed, "folder": folder.name,
                "size_bytes": sum(p.stat().st_size for p in folder.iterdir() if p.is_file())}


def _cancel(w) -> None:
    """Cancel a Whoosh writer whatever state a failure left it in, releasing its lock."""
    if w.is_closed:
        return
    try:
        w.cancel()
    except Exception:
        log.exception("search index: cancelling a failed writer failed; releasing its lock")
        lock = getattr(w, "writelock", None)
        if lock is not None:
            try:
                lock.release()
            except Exception:  # pragma: no cover - nothing more can be done
                pass
        w.is_closed = True


# --------------------------------------------------------------------------- rebuild workers


def _build_with_whoosh_writer(folder: Path, chunks, load: LoadChunk, progress) -> int:
    """Fill the new folder through Whoosh's own writer (one commit at the end)."""
    writer = whoosh_index.open_dir(str(folder)).writer()
    count = 0
    try:
        for doc_type, ids in chunks:
            for doc in load(doc_type, ids):
                writer.add_document(**doc.fields())
                count += 1
            if progress:
                progress(len(ids))
    except BaseException:
        writer.cancel()
        raise
    writer.commit()
    return count


def _build_into(folder: Path, jobs, results, load: LoadChunk, Builder) -> None:
    """Worker body: turn (doc_type, ids) jobs into segments of `folder`."""
    # A builder holds millions of small objects; letting the cyclic GC rescan them every
    # few thousand allocations costs more than the indexing. Collect once per chunk instead.
    gc.freeze()
    gc.disable()
    ix = whoosh_index.open_dir(str(folder))
    builder = Builder(ix)
    while True:
        job = jobs.get()
        if job is None:
            break
        doc_type, ids = job
        for doc in load(doc_type, ids):
            builder.add(doc.fields())
        gc.collect()
        results.put(("progress", len(ids), None))
        if builder.count >= SEGMENT_DOCS:
            results.put(("segment", builder.count, builder.finish()))
            builder = Builder(ix)
    if builder.count:
        results.put(("segment", builder.count, builder.finish()))
    else:
        builder.discard()


def _worker_main(folder, jobs, results, load, child_init, Builder) -> None:
    try:
        if child_init is not None:
            child_init()
        _build_into(folder, jobs, results, load, Builder)
        results.put(("done", 0, None))
    except BaseException:
        results.put(("error", 0, traceback.format_exc()))


def _build_segments(folder: Path, chunks, load, procs, progress, child_init, Builder):
    segments: list = []
    count = 0
    if procs <= 1 or len(chunks) <= 1:
        ix = whoosh_index.open_dir(str(folder))
        builder = Builder(ix)
        for doc_type, ids in chunks:
            for doc in load(doc_type, ids):
                builder.add(doc.fields())
            count += len(ids)
            if progress:
                progress(len(ids))
            if builder.count >= SEGMENT_DOCS:
                segments.append(builder.finish())
                builder = Builder(ix)
        if builder.count:
            segments.append(builder.finish())
        else:
            builder.discard()
        return segments, sum(s.doc_count_all() for s in segments)

    ctx = multiprocessing.get_context("fork")
    jobs, results = ctx.Queue(), ctx.Queue()
    for c in chunks:
        jobs.put(c)
    workers = [ctx.Process(target=_worker_main, args=(folder, jobs, results, load, child_init, Builder),
                           daemon=True)
               for _ in range(procs)]
    for _ in workers:
        jobs.put(None)
    for p in workers:
        p.start()
    done = 0
    error = None
    try:
        while done < len(workers):
            try:
                kind, n, payload = results.get(timeout=1.0)
            except queue.Empty:
                dead = [p for p in workers if not p.is_alive() and p.exitcode not in (0, None)]
                if dead:
                    error = f"worker exited with code {dead[0].exitcode}"
                    break
                continue
            if kind == "progress":
                count += n
                if progress:
                    progress(n)
            elif kind == "segment":
                segments.append(payload)
            elif kind == "done":
                done += 1
            elif kind == "error":
                error = payload
                break
    finally:
        if error is not None:
            for p in workers:
                p.terminate()
        for p in workers:
            p.join()
    if error is not None:
        raise RuntimeError(f"a rebuild worker failed:\n{error}")
    return segments, sum(s.doc_count_all() for s in segments)
