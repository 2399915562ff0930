"""Which process may write a VoG run, and which runs a killed write may have left mixed.

**The run lock.** :func:`run_lock` takes a lock on ``(dataset, run key)`` for the whole of a
:func:`fiftyone_vog.compute_vog` (checking, scoring, writing) and for
:func:`fiftyone_vog.delete_vog_run`: one document in the collection ``fiftyone_vog.core.locks`` of
FiftyOne's database, with a unique index on ``(dataset_id, key)``, so that every process on
every machine that shares the database sees it. The document names its holder (host, pid,
the process's start time) and since when it holds; a thread refreshes its ``heartbeat``. A
lock is stale — and the next run takes it over — when its holder's pid is dead on this host
(or is another process that reuses the pid), or when its heartbeat is older than
``FIFTYONE_VOG_LOCK_TIMEOUT`` seconds (default 120; the holder refreshes every tenth of it):
how a crashed holder on another machine is told from a slow one.

**The writing mark.** :func:`writing` persists a document in ``fiftyone_vog.writing`` before
the first chunk of a write and deletes it once the write is complete or has been undone. A
mark that outlives its write means the process was killed (SIGKILL, OOM) mid-write: the
fields may hold new values on some samples and old ones on others; :func:`mixed_message`
says so and gives the command that rewrites them.
"""

from __future__ import annotations

import contextvars as _cv
import datetime as _dt
import os
import shlex
import socket
import threading
import uuid

from ..errors import VoGError
from ..options import TRANSFORMS

LOCKS = "fiftyone_vog.locks"
#: The key prefix of a run's claim on an output field (run keys are field names: no ':' in them).
FIELD_CLAIM = "field:"
WRITING = "fiftyone_vog.writing"


def _timeout() -> float:
    try:
        return float(os.environ.get("FIFTYONE_VOG_LOCK_TIMEOUT", "120"))
    except ValueError:
        raise VoGError(
            f"FIFTYONE_VOG_LOCK_TIMEOUT={os.environ['FIFTYONE_VOG_LOCK_TIMEOUT']!r} is not a "
            "number of seconds; unset it or set e.g. 120"
        ) from None


def _now() -> _dt.datetime:
    return _dt.datetime.now(_dt.UTC).replace(tzinfo=None)  # MongoDB returns naive UTC


def _proc_start(pid: int) -> str | None:
    """The process's start time in clock ticks since boot (Linux), to tell a reused pid apart."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[19]
    except (OSError, IndexError):
        return None


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _collection(name):
    import fiftyone.core.odm as foo

    coll = foo.get_db_conn()[name]
    coll.create_index([("dataset_id", 1), ("key", 1)], unique=True)
    return coll


def _holder() -> dict:
    return {"host": socket.gethostname(), "pid": os.getpid(), "proc_start": _proc_start(os.getpid())}


def _stale(doc: dict, timeout: float) -> str | None:
    """Why the lock ``doc`` is stale, or None while its holder may still be at work."""
    h = doc.get("holder", {})
    if h.get("host") == socket.gethostname() and isinstance(h.get("pid"), int):
        if not _alive(h["pid"]):
            return f"its holder pid {h['pid']} is gone"
        start = _proc_start(h["pid"])
        if h.get("proc_start") and start and start != h["proc_start"]:
            return f"pid {h['pid']} is now another process"
    beat = doc.get("heartbeat")
    if beat is not None and (_now() - beat).total_seconds() > timeout:
        return f"its heartbeat is {(_now() - beat).total_seconds():.0f}s old"
    return None


def _describe(doc: dict) -> str:
    h = doc.get("holder", {})
    since = doc.get("since")
    since = since.strftime("%Y-%m-%d %H:%M:%S UTC") if since else "?"
    return f"{doc.get('what', 'a run')} by pid {h.get('pid')} on {h.get('host')} since {since}"


class RunLock:
    """A held run lock (see the module's doc); :meth:`release` it, or use :func:`run_lock`."""

    def __init__(self, dataset, key: str, what: str = "compute"):
        self.dataset_id, self.key = str(dataset._doc.id), key
        self._name = dataset.name
        self._coll = _collection(LOCKS)
        self.token = uuid.uuid4().hex
        self._stop = threading.Event()
        self._acquire(what)
        self._beat = threading.Thread(target=self._heartbeat, name=f"fiftyone-vog-lock-{key}", daemon=True)
        self._beat.start()

    def _acquire(self, what: str) -> None:
        from pymongo.errors import DuplicateKeyError

        timeout = _timeout()
        for _ in range(3):
            now = _now()
            doc = {
                "dataset_id": self.dataset_id,
                "key": self.key,
                "token": self.token,
                "what": what,
                "holder": _holder(),
                "since": now,
                "heartbeat": now,
            }
            try:
                self._coll.insert_one(doc)
                return
            except DuplicateKeyError:
                pass
            other = self._coll.find_one({"dataset_id": self.dataset_id, "key": self.key})
            if other is None:
                continue  # released meanwhile: try again
            why = _stale(other, timeout)
            if why is None:
                raise VoGError(
                    f"the VoG run {self.key!r} of dataset {self._name!r} is locked: {_describe(other)}; "
                    f"wait for it to finish, or choose another vog_field (if that process is dead on another "
                    f"machine, its lock expires {timeout:.0f}s after its last heartbeat)"
                )
            import logging

            logging.getLogger(__name__).warning(
                "taking over the stale lock of VoG run %r (%s; %s)", self.key, _describe(other), why
            )
            self._coll.delete_one({"_id": other["_id"], "token": other.get("token")})  # only that stale one
        raise VoGError(
            f"could not take the lock of VoG run {self.key!r} of dataset {self._name!r}: "
            "other processes keep taking it; try again"
        )

    def claim_fields(self, names) -> None:
        """Claim the output fields ``names`` for this run, all or none, before any work: one
        document per field (key ``field:<name>``) beside the run lock, with its token and
        heartbeat, so that two runs of different keys never write the same field at once (run
        ``vog`` with window ``x`` and run ``vog_x`` both write ``vog_x``). A claim whose holder is
        stale (the run lock's rules) is taken over; a live one is refused in one line. Released
        with the lock."""
        from pymongo.errors import DuplicateKeyError

        timeout = _timeout()
        try:
            for name in dict.fromkeys(names):
                for _ in range(3):
                    now = _now()
                    doc = {
                        "dataset_id": self.dataset_id,
                        "key": f"{FIELD_CLAIM}{name}",
                        "token": self.token,
                        "run": self.key,
                        "what": "compute",
                        "holder": _holder(),
                        "since": now,
                        "heartbeat": now,
                    }
                    try:
                        self._coll.insert_one(doc)
                        break
                    except DuplicateKeyError:
                        pass
                    other = self._coll.find_one({"dataset_id": self.dataset_id, "key": doc["key"]})
                    if other is None:
                        continue  # released meanwhile: try again
                    if other.get("token") == self.token:
                        break  # claimed already (a name given twice)
                    if _stale(other, timeout) is None:
                        raise VoGError(
                            f"field {name!r} of dataset {self._name!r} is being written by the VoG run "
                            f"{other.get('run')!r} ({_describe(other)}); a run never writes another run's fields: "
                            "choose another vog_field or window name, or wait for that run to finish"
                        )
                    self._coll.delete_one({"_id": other["_id"], "token": other.get("token")})  # only that stale one
                else:
                    raise VoGError(f"could not claim field {name!r} of dataset {self._name!r}: try again")
        except BaseException:
            self._coll.delete_many({"dataset_id": self.dataset_id, "token": self.token, "key": {"$ne": self.key}})
            raise

    def _heartbeat(self) -> None:
        period = max(0.5, _timeout() / 10)
        while not self._stop.wait(period):
            try:
                self._coll.update_many(
                    {"dataset_id": self.dataset_id, "token": self.token},
                    {"$set": {"heartbeat": _now()}},
                )
            except Exception:  # the database is away for a moment: the next beat tries again
                pass

    def check(self) -> None:
        """Raise unless this process still holds the lock (a lock that went stale may have been taken)."""
        doc = self._coll.find_one({"dataset_id": self.dataset_id, "key": self.key})
        if doc is None or doc.get("token") != self.token:
            who = f" ({_describe(doc)})" if doc else ""
            raise VoGError(
                f"lost the lock of VoG run {self.key!r} of dataset {self._name!r}{who}; nothing "
                f"was written; run again when the other run is done"
            )

    def release(self) -> None:
        self._stop.set()
        try:
            self._coll.delete_many({"dataset_id": self.dataset_id, "token": self.token})  # the lock and its claims
        except Exception:  # stale after the timeout, then taken over: nothing is lost
            pass


class run_lock:  # a context manager used like a function
    """``with run_lock(dataset, key): ...`` holds the :class:`RunLock` of ``(dataset, key)``."""

    def __init__(self, dataset, key: str, what: str = "compute"):
        self._args = (dataset, key, what)
        self.lock: RunLock | None = None

    def __enter__(self) -> RunLock:
        self.lock = RunLock(*self._args)
        return self.lock

    def __exit__(self, *exc) -> None:
        self.lock.release()


# -- the writing mark ----------------------------------------------------------
def mark_writing(samples, key: str, fields, config: dict | None) -> None:
    """Persist that a write of run ``key`` of the collection ``samples`` begins (see the module's doc)."""
    dataset = samples._dataset
    view = samples is not dataset
    doc = {
        "dataset_id": str(dataset._doc.id),
        "key": key,
        "fields": list(fields),
        "since": _now(),
        "holder": _holder(),
        "dataset": dataset.name,
        "view": samples.name if view else None,
        "unsaved_view": view and not samples.name,
        "config": _repairable(config or {}),
    }
    _collection(WRITING).replace_one({"dataset_id": doc["dataset_id"], "key": key}, doc, upsert=True)


def clear_writing(dataset, key: str) -> None:
    _collection(WRITING).delete_one({"dataset_id": str(dataset._doc.id), "key": key})


def unfinished_writes(dataset, keys=None) -> list[dict]:
    """The writing marks of ``dataset`` (of ``keys`` only, if given) whose write is not running now."""
    import fiftyone.core.odm as foo

    db = foo.get_db_conn()
    query = {"dataset_id": str(dataset._doc.id)}
    if keys is not None:
        query["key"] = {"$in": list(keys)}
    out = []
    for doc in db[WRITING].find(query):
        lock = db[LOCKS].find_one({"dataset_id": doc["dataset_id"], "key": doc["key"]})
        if lock is not None and lock.get("holder") == doc.get("holder") and _stale(lock, _timeout()) is None:
            continue  # its writer is alive and writing
        out.append(doc)
    return out


_CONFIG_KEYS = (
    "checkpoints",
    "model",
    "num_classes",
    "label_field",
    "classes",
    "label_mode",
    "target",
    "statistic",
    "channel_reduction",
    "normalization",
    "windows",
    "transform",
    "precision",
    "engine",
    "manifest",
    "state_dict_key",
)


def _repairable(config: dict) -> dict:
    return {k: config.get(k) for k in _CONFIG_KEYS if k in config}


def _checkpoints(config: dict):
    """The checkpoints of a run as given again: the folder of its manifest (whose transform and
    weights entry "auto" reads there too), else its files."""
    manifest = config.get("manifest")
    return os.path.dirname(manifest) if manifest else config.get("checkpoints")


def repair_commands(doc: dict) -> tuple[str | None, str]:
    """``(CLI command or None, Python call)`` that rewrite every field of the run of writing mark
    ``doc`` with the configuration it was writing (``--resume`` reuses its saved raw scores)."""
    c, key, name = doc.get("config", {}), doc["key"], doc.get("dataset", "?")
    engine = c.get("engine") or {}
    autocast = engine.get("autocast") if isinstance(engine, dict) else None
    py = [
        f"fo.load_dataset({name!r})" + (f".load_saved_view({doc['view']!r})" if doc.get("view") else ""),
        repr(_checkpoints(c)),
    ]
    cli = ["fiftyone-vog", "compute", name]
    if doc.get("view"):
        cli += ["--view", doc["view"]]
    spec = _checkpoints(c)
    cli += ["--checkpoints", spec if isinstance(spec, str) else ",".join(spec or [])]
    model = c.get("model")
    ok = isinstance(model, str) and not model.startswith(("nn.Module:", "factory:")) or model is None
    transform = c.get("transform")
    ok = ok and (transform is None or transform in TRANSFORMS)
    classes = c.get("classes") or []
    paths = [spec] if isinstance(spec, str) else spec or []
    ok = ok and not any("," in str(x) for x in classes) and not any("," in p for p in paths)
    if c.get("state_dict_key") not in (None, "state_dict"):  # the trained weights are the default
        cli += ["--state-dict-key", c["state_dict_key"]]
        py.append(f"state_dict_key={c['state_dict_key']!r}")
    if doc.get("unsaved_view"):  # the CLI scores whole datasets and saved views only
        ok, py[0] = False, "<the same view>"
    py.append(f"model={model!r}" if ok or model is None else "model=<the same model>")
    if model is not None:
        cli += ["--model", str(model)]
    if c.get("num_classes") is not None:
        cli += ["--num-classes", str(c["num_classes"])]
        py.append(f"num_classes={c['num_classes']!r}")
    options = [
        ("label_field", "ground_truth"),
        ("label_mode", "true"),
        ("target", "logit"),
        ("statistic", "variance"),
        ("channel_reduction", "sum"),
        ("normalization", "zscore"),
        ("precision", "float32"),
    ]
    for opt, default in options:
        if c.get(opt, default) != default:
            cli += [f"--{opt.replace('_', '-')}", str(c[opt])]
            py.append(f"{opt}={c[opt]!r}")
    if classes:
        cli += ["--classes", ",".join(map(str, classes))]
        py.append(f"classes={list(classes)!r}")
    if c.get("windows"):
        import json

        cli += ["--windows", json.dumps(c["windows"])]
        py.append(f"windows={c['windows']!r}")
    if transform not in (None, "auto"):  # None and "auto": the default of both
        cli += ["--transform", str(transform)]
        py.append(f"transform={transform!r}" if ok else "transform=<the same transform>")
    if autocast:
        cli += ["--autocast", autocast]
        py.append(f"autocast={autocast!r}")
    cli += ["--vog-field", key, "--resume", "--overwrite"]
    py += [f"vog_field={key!r}", "resume=True", "overwrite=True"]
    return (shlex.join(cli) if ok else None), f"fov.compute_vog({', '.join(py)})"


def mixed_message(doc: dict) -> str:
    """One line: the write of ``doc`` did not finish, which fields may be mixed, and the repair."""
    cli, py = repair_commands(doc)
    since = doc["since"].strftime("%Y-%m-%d %H:%M:%S UTC") if doc.get("since") else "?"
    h = doc.get("holder", {})
    how = f"run `{cli}`, or in Python {py}" if cli else f"in Python run {py}"
    return (
        f"the write of VoG run {doc['key']!r} on dataset {doc.get('dataset')!r} (pid {h.get('pid')} on "
        f"{h.get('host')}, {since}) did not finish: fields {sorted(doc.get('fields') or [])} may be mixed (new values on "
        f"some samples, old on others) and the run may describe other checkpoints; to repair, {how}"
    )


# -- the lock of the run this thread computes ---------------------------------
_current: _cv.ContextVar = _cv.ContextVar("fiftyone_vog_run_lock", default=None)


def locked(fn):
    """Decorate ``compute_vog``: the call holds the run lock of ``(dataset, vog_field)`` throughout
    (under torchrun, rank 0 holds it for all ranks; the others wait for rank 0 at its barriers)."""
    import functools
    import inspect

    sig = inspect.signature(fn)

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        bound = sig.bind(*args, **kwargs)
        samples = bound.arguments["samples"]
        key = bound.arguments.get("vog_field", sig.parameters["vog_field"].default)
        if int(os.environ.get("RANK", "0") or 0) != 0 or not isinstance(key, str) or not hasattr(samples, "_dataset"):
            return fn(*args, **kwargs)  # not the writing rank, or an argument compute_vog itself refuses
        with run_lock(samples._dataset, key) as lock:
            token = _current.set(lock)
            try:
                return fn(*args, **kwargs)
            finally:
                _current.reset(token)

    return wrapper


def holds_lock(dataset, key: str) -> bool:
    """Whether this thread's run (:func:`locked`) holds the lock of ``(dataset, key)``."""
    lock = _current.get()
    return lock is not None and lock.dataset_id == str(dataset._doc.id) and lock.key == key


def claim_fields(dataset, key: str, names) -> None:
    """Claim ``names`` for the run ``key`` this thread computes (:meth:`RunLock.claim_fields`);
    no-op when this thread holds no lock (not the writing rank, or a step called on its own)."""
    if holds_lock(dataset, key):
        _current.get().claim_fields(names)


def check_current(dataset, key: str) -> None:
    """Before writing: raise unless this thread's run still holds the lock of ``key`` (no-op when
    no lock is held, e.g. ``write_run`` called directly)."""
    if holds_lock(dataset, key):
        _current.get().check()
