"""Report cells, as the suite writes and reads them."""
import ast
from typing import Any


def parse_cell(value: str) -> Any:
    """A CSV cell as its value: ``None`` if empty, a number (``nan`` and
    ``inf`` included), bool or tuple, else the string (e.g. a reducer
    name)."""
    if value == '':
        return None
    if value.lower() in ('nan', '-nan', 'inf', '-inf'):
        return float(value)
    try:
        return ast.literal_eval(value)
    except (ValueError, SyntaxError):
        return value
