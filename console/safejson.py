"""JSON text from outside (a request body, a worker's error, a form field), parsed so that
every way it can be bad is a ValueError: Python's decoder raises RecursionError, not
ValueError, for nesting about a thousand levels deep, and a page or route that caught only
ValueError answered such text with a 500."""

import json


def loads(text: str | bytes):
    try:
        return json.loads(text)
    except RecursionError:
        raise ValueError("JSON nested too deeply") from None
