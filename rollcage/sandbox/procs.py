"""Reading the host's /proc for processes that live in a sandbox."""

from __future__ import annotations


def ns_pid(host_pid: int) -> int | None:
    """The pid a process has in its innermost pid namespace (last NSpid field)."""
    try:
        with open(f"/proc/{host_pid}/status") as f:
            for line in f:
                if line.startswith("NSpid:"):
                    return int(line.split()[-1])
    except (OSError, ValueError):
        return None
    return None


def _stat_field(pid: int, index: int) -> int | None:
    """Field ``index`` of /proc/<pid>/stat, counted from the state field (0) on."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            data = f.read()
    except OSError:
        return None
    # comm may contain spaces and parentheses: fields resume after the last ')'.
    fields = data[data.rfind(b")") + 2 :].split()
    return int(fields[index]) if len(fields) > index else None


def parent_pid(host_pid: int) -> int | None:
    return _stat_field(host_pid, 1)


def descendants_or_orphans(candidates: list[int], ancestor: int, orphan_parent: int) -> list[int]:
    """Candidates whose ancestry reaches ``ancestor``, or that were re-parented to the
    sandbox's init (``orphan_parent``) — i.e. daemonised children of a command."""
    parents = {pid: parent_pid(pid) for pid in candidates}
    chosen = []
    for pid in candidates:
        seen = 0
        cursor: int | None = pid
        while cursor is not None and seen < 64:
            parent = parents.get(cursor) if cursor in parents else parent_pid(cursor)
            if parent == ancestor or (parent == orphan_parent and cursor in parents):
                chosen.append(pid)
                break
            cursor = parent
            seen += 1
    return chosen


def start_ticks(pid: int) -> int | None:
    """Process start time in clock ticks since boot; with the pid it names a process
    uniquely, so a recycled pid is not mistaken for a live supervisor."""
    return _stat_field(pid, 19)
