"""Example task functions. A cluster runs them by dotted path, e.g. ``"shop.tasks.add"``."""

import time


def add(a: float, b: float) -> float:
    """Add two numbers."""
    return a + b


def slow(seconds: float = 1.0) -> str:
    """Sleep, then say how long: a task that keeps a worker busy."""
    time.sleep(seconds)
    return f"slept {seconds} s"


def fail(message: str = "this task always fails") -> None:
    """Raise ValueError: the admin lists it under failed tasks, with the traceback."""
    raise ValueError(message)


def count_words(text: str) -> dict[str, int]:
    """Count the words of a text, case-insensitively."""
    counts: dict[str, int] = {}
    for word in text.lower().split():
        word = word.strip(".,;:!?\"'()")
        if word:
            counts[word] = counts.get(word, 0) + 1
    return counts


def print_result(task) -> None:
    """A hook: called with the saved Task once the task has finished."""
    outcome = "ok" if task.success else "failed"
    print(f"hook: {task.name} ({task.func}) {outcome}: {task.result!r}", flush=True)
