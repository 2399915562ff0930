"""How an operator's failure reaches the user in the FiftyOne App (1.22).

What FiftyOne does with an exception raised by an operator's ``execute``:

- a streaming (generator) operator such as Compute VoG: the App iterates the generator
  inside the HTTP response, so an exception ends the stream and is only logged by the
  server ("Error in ASGI Framework"); the App shows nothing. Messages *yielded* before it
  are delivered.
- a plain operator: the App shows "Error occurred during operator execution" with the
  traceback folded away, and the form is gone.

So on failure the operators first send an error notification with the API's one-line
message, in the form's words (``forms.app_message``: "tick 'Overwrite'", not ``overwrite=True``).
When the run came from the App (its execute request names the operator in its body,
``operator_uri``; Python's ``foo.execute_operator`` does not, and the App 1.22 leaves
``prompt_id`` empty), they then reopen the operator's form with the same parameters, so that
the user can fix one value and run it again, and end without raising (an exception after the reopen replaces the form
with FiftyOne's traceback view). Anything else (Python's ``foo.execute_operator``,
delegated runs) still gets the exception, as before.
"""

from __future__ import annotations

import logging

from ..errors import VoGError

logger = logging.getLogger(__name__)


def error_message(error: BaseException) -> str:
    """The one line the user sees: a :class:`VoGError`'s message as is; anything else
    with its type, first line only."""
    if isinstance(error, VoGError):
        return str(error)
    text = str(error).strip().splitlines()
    return f"{type(error).__name__}: {text[0]}" if text else type(error).__name__


def from_app_prompt(ctx) -> bool:
    """Whether this execution came from the App (not delegated, not Python)."""
    return not ctx.delegated and bool(ctx.request_params.get("operator_uri") or getattr(ctx, "prompt_id", None))


def report_failure(ctx, operator_uri: str, error: BaseException) -> tuple[list, bool]:
    """Tell the App about ``error``; returns (messages to yield, whether to re-raise).

    The messages are also queued on the executor, which is what a plain operator's App
    response carries; a generator operator yields them.
    """
    if ctx.delegated:
        return [], True
    from .forms import app_message

    message = app_message(error_message(error), operator_uri.rsplit("/", 1)[-1])  # the form's words
    messages = [ctx.ops.notify(message, variant="error")]
    if not from_app_prompt(ctx):
        return messages, True
    logger.warning("%s failed: %s", operator_uri, message)  # the server log keeps a trace too
    params = {k: v for k, v in dict(ctx.params).items() if v is not None}
    messages.append(ctx.prompt(operator_uri, params=params))
    return messages, False


def reported(execute):
    """Decorate an operator's ``execute`` (plain or generator) with :func:`report_failure`."""
    import functools
    import inspect

    if inspect.isgeneratorfunction(execute):

        @functools.wraps(execute)
        def run_streaming(self, ctx):
            try:
                return (yield from execute(self, ctx))
            except Exception as e:
                messages, reraise = report_failure(ctx, self.uri, e)
                yield from messages
                if reraise:
                    raise

        return run_streaming

    @functools.wraps(execute)
    def run(self, ctx):
        try:
            return execute(self, ctx)
        except Exception as e:
            _, reraise = report_failure(ctx, self.uri, e)
            if reraise:
                raise
            return None  # no result: the App closes the failed run's dialog and opens the reopened form

    return run
