"""Condition: compares `left` with `right` and continues on the `true` or `false` port."""
from engine.steps import Outcome


def _num(v):
    if isinstance(v, bool):
        raise TypeError
    if isinstance(v, (int, float)):
        return v
    return float(v)


def _empty(v) -> bool:
    return v is None or v == "" or v == [] or v == {}


def evaluate(left, operator: str, right) -> bool:
    """:raises ValueError: the operands do not fit the operator."""
    if operator == "==":
        return left == right or (not isinstance(left, type(right)) and str(left) == str(right))
    if operator == "!=":
        return not evaluate(left, "==", right)
    if operator in (">", ">=", "<", "<="):
        try:
            a, b = _num(left), _num(right)
        except (TypeError, ValueError):
            if isinstance(left, str) and isinstance(right, str):
                a, b = left, right
            else:
                raise ValueError(f"cannot compare {left!r} {operator} {right!r}") from None
        return {">": a > b, ">=": a >= b, "<": a < b, "<=": a <= b}[operator]
    if operator in ("contains", "not_contains"):
        if isinstance(left, (list, dict)):
            found = right in left
        elif isinstance(left, str):
            found = str(right) in left
        else:
            raise ValueError(f"'contains' needs a string, array or object on the left, got {left!r}")
        return found if operator == "contains" else not found
    if operator == "is_empty":
        return _empty(left)
    if operator == "is_not_empty":
        return not _empty(left)
    if operator == "is_true":
        return left is True or (isinstance(left, str) and left.strip().lower() in ("true", "1", "yes"))
    raise ValueError(f"unknown operator {operator!r}")


def run(ctx, params) -> Outcome:
    left, op, right = params.get("left"), params.get("operator", "=="), params.get("right")
    try:
        result = evaluate(left, op, right)
    except ValueError as exc:
        return Outcome.failed(str(exc))
    return Outcome(output={"result": result, "left": left, "operator": op, "right": right},
                   ports=("true",) if result else ("false",))
